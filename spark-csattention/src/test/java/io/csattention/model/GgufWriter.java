package io.csattention.model;

import io.csattention.format.Half;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A small GGUF v3 writer for tests (the layout is documented on {@link GgufFile}): string, uint32 (Integer), int64
 * (Long), float32, bool and array metadata; tensors in F32, F16, BF16, Q8_0 and Q4_0 (quantized as llama.cpp's
 * reference quantizers do), Q4_K, Q5_K and Q6_K (simple min/max quantizers, valid encodings but not llama.cpp's
 * optimized ones), or raw bytes of any type id.
 */
final class GgufWriter {

    /** A tensor's bytes: {@code data}, or {@code length} bytes left as a hole of zeros but for {@code patches}. */
    private record Tensor(String name, long[] dims, int typeId, byte[] data, long length, Map<Long, byte[]> patches) {
        Tensor(String name, long[] dims, int typeId, byte[] data) {
            this(name, dims, typeId, data, data.length, Map.of());
        }
    }

    private final Map<String, Object> metadata = new LinkedHashMap<>();
    private final List<Tensor> tensors = new ArrayList<>();
    private final Map<String, Long> offsets = new LinkedHashMap<>();
    private int version = 3;

    /** Writes {@code offset} as tensor {@code name}'s offset instead of the one its data has (for bad files). */
    GgufWriter offset(String name, long offset) {
        offsets.put(name, offset);
        return this;
    }

    GgufWriter version(int v) {
        this.version = v;
        return this;
    }

    GgufWriter put(String key, Object value) {
        metadata.put(key, value);
        return this;
    }

    /** A tensor [rows, cols] (dims written cols first, as GGUF does); a vector when rows is 1 and flat is true. */
    GgufWriter tensor(String name, TensorType type, float[] values, int rows, int cols) {
        long[] dims = rows == 1 ? new long[] {cols} : new long[] {cols, rows};
        tensors.add(new Tensor(name, dims, type.ggmlId(), encode(type, values)));
        return this;
    }

    GgufWriter raw(String name, int typeId, long[] dims, byte[] data) {
        tensors.add(new Tensor(name, dims, typeId, data));
        return this;
    }

    /**
     * A tensor of {@code type} and {@code dims} whose bytes are zeros, written as a hole of a sparse file (so that
     * tensors of gigabytes cost no disk), except {@code patches}: bytes at offsets within the tensor. Only
     * {@link #write} writes such a tensor.
     */
    GgufWriter sparse(String name, TensorType type, long[] dims, Map<Long, byte[]> patches) {
        long elements = 1;
        for (long d : dims) {
            elements *= d;
        }
        tensors.add(new Tensor(name, dims, type.ggmlId(), null, type.bytes(elements), patches));
        return this;
    }

    static byte[] encode(TensorType type, float[] values) {
        ByteBuffer out = ByteBuffer.allocate((int) type.bytes(values.length)).order(ByteOrder.LITTLE_ENDIAN);
        switch (type) {
            case F32 -> out.asFloatBuffer().put(values);
            case F16 -> {
                for (float v : values) {
                    out.putShort(Half.fromFloat(v));
                }
            }
            case BF16 -> {
                for (float v : values) {
                    int bits = Float.floatToRawIntBits(v);
                    out.putShort((short) ((bits + 0x7FFF + ((bits >>> 16) & 1)) >>> 16));
                }
            }
            case Q8_0 -> {
                for (int b = 0; b < values.length; b += 32) {
                    float amax = 0;
                    for (int j = 0; j < 32; j++) {
                        amax = Math.max(amax, Math.abs(values[b + j]));
                    }
                    float d = amax / 127f;
                    float id = d != 0 ? 1f / d : 0f;
                    out.putShort(Half.fromFloat(d));
                    for (int j = 0; j < 32; j++) {
                        out.put((byte) Math.round(values[b + j] * id));
                    }
                }
            }
            case Q4_0 -> {
                for (int b = 0; b < values.length; b += 32) {
                    float amax = 0;
                    float max = 0;
                    for (int j = 0; j < 32; j++) {
                        if (Math.abs(values[b + j]) > amax) {
                            amax = Math.abs(values[b + j]);
                            max = values[b + j];
                        }
                    }
                    float d = max / -8f;
                    float id = d != 0 ? 1f / d : 0f;
                    out.putShort(Half.fromFloat(d));
                    for (int j = 0; j < 16; j++) {
                        int lo = Math.min(15, (int) (values[b + j] * id + 8.5f));
                        int hi = Math.min(15, (int) (values[b + j + 16] * id + 8.5f));
                        out.put((byte) (lo | hi << 4));
                    }
                }
            }
            case Q4_K, Q5_K -> {
                for (int b = 0; b < values.length; b += 256) {
                    encodeK(values, b, out, type == TensorType.Q5_K);
                }
            }
            case Q6_K -> {
                for (int b = 0; b < values.length; b += 256) {
                    encodeQ6K(values, b, out);
                }
            }
        }
        return out.array();
    }

    private static float half(float v) {
        return Half.toFloat(Half.fromFloat(v));
    }

    /**
     * One block of 256 of Q4_K, or of Q5_K when {@code fiveBits}: per sub-block of 32 an offset (-min, min clamped to
     * at most 0) and a step ((max + offset) / 15, or / 31), as 6-bit multiples of the block's fp16 dmin and d, both
     * rounded up so that no element is clamped: each element is within half a step of the sub-block, plus half of d.
     */
    private static void encodeK(float[] x, int base, ByteBuffer out, boolean fiveBits) {
        int levels = fiveBits ? 31 : 15;
        float[] maxes = new float[8];
        float[] offset = new float[8];
        for (int j = 0; j < 8; j++) {
            float min = Float.POSITIVE_INFINITY;
            float max = Float.NEGATIVE_INFINITY;
            for (int i = 0; i < 32; i++) {
                min = Math.min(min, x[base + 32 * j + i]);
                max = Math.max(max, x[base + 32 * j + i]);
            }
            offset[j] = Math.max(0, -min);
            maxes[j] = max;
        }
        float dmin = half(max(offset) / 63);
        int[] mn = new int[8];
        float[] step = new float[8];
        for (int j = 0; j < 8; j++) {
            mn[j] = dmin == 0 ? 0 : Math.min(63, (int) Math.ceil(offset[j] / dmin));
            step[j] = Math.max(0, maxes[j] + dmin * mn[j]) / levels;
        }
        float d = half(max(step) / 63);
        int[] sc = new int[8];
        for (int j = 0; j < 8; j++) {
            sc[j] = d == 0 ? 0 : Math.min(63, (int) Math.ceil(step[j] / d));
        }
        byte[] scales = new byte[12];
        for (int j = 0; j < 8; j++) {
            if (j < 4) {
                scales[j] |= (byte) sc[j];
                scales[j + 4] |= (byte) mn[j];
            } else {
                scales[j + 4] = (byte) ((sc[j] & 0x0F) | (mn[j] & 0x0F) << 4);
                scales[j - 4] |= (byte) ((sc[j] >> 4) << 6);
                scales[j] |= (byte) ((mn[j] >> 4) << 6);
            }
        }
        int[] q = new int[256];
        for (int e = 0; e < 256; e++) {
            int j = e / 32;
            float unit = d * sc[j];
            q[e] = unit == 0 ? 0 : Math.max(0, Math.min(levels, Math.round((x[base + e] + dmin * mn[j]) / unit)));
        }
        out.putShort(Half.fromFloat(d));
        out.putShort(Half.fromFloat(dmin));
        out.put(scales);
        if (fiveBits) {
            // bit 2c of qh[l]: the fifth bit of element 64c + l; bit 2c + 1: of element 64c + 32 + l
            for (int l = 0; l < 32; l++) {
                int h = 0;
                for (int chunk = 0; chunk < 4; chunk++) {
                    h |= (q[64 * chunk + l] >> 4) << (2 * chunk) | (q[64 * chunk + 32 + l] >> 4) << (2 * chunk + 1);
                }
                out.put((byte) h);
            }
        }
        for (int chunk = 0; chunk < 4; chunk++) {
            for (int l = 0; l < 32; l++) {
                out.put((byte) ((q[64 * chunk + l] & 0x0F) | (q[64 * chunk + 32 + l] & 0x0F) << 4));
            }
        }
    }

    private static void encodeQ6K(float[] x, int base, ByteBuffer out) {
        float[] step = new float[16];
        for (int j = 0; j < 16; j++) {
            for (int i = 0; i < 16; i++) {
                step[j] = Math.max(step[j], Math.abs(x[base + 16 * j + i]) / 31);
            }
        }
        float d = half(max(step) / 127);
        int[] sc = new int[16];
        int[] codes = new int[256];
        for (int j = 0; j < 16; j++) {
            sc[j] = d == 0 ? 0 : Math.min(127, (int) Math.ceil(step[j] / d));
        }
        for (int e = 0; e < 256; e++) {
            float unit = d * sc[e / 16];
            codes[e] = (unit == 0 ? 0 : Math.max(-32, Math.min(31, Math.round(x[base + e] / unit)))) + 32;
        }
        byte[] ql = new byte[128];
        byte[] qh = new byte[64];
        for (int half = 0; half < 2; half++) {
            int j = 128 * half;
            for (int l = 0; l < 32; l++) {
                ql[64 * half + l] = (byte) ((codes[j + l] & 0xF) | (codes[j + l + 64] & 0xF) << 4);
                ql[64 * half + l + 32] = (byte) ((codes[j + l + 32] & 0xF) | (codes[j + l + 96] & 0xF) << 4);
                qh[32 * half + l] = (byte) ((codes[j + l] >> 4) | (codes[j + l + 32] >> 4) << 2
                        | (codes[j + l + 64] >> 4) << 4 | (codes[j + l + 96] >> 4) << 6);
            }
        }
        out.put(ql);
        out.put(qh);
        for (int s : sc) {
            out.put((byte) s);
        }
        out.putShort(Half.fromFloat(d));
    }

    private static float max(float[] values) {
        float m = 0;
        for (float v : values) {
            m = Math.max(m, v);
        }
        return m;
    }

    byte[] bytes() throws IOException {
        Out out = header();
        for (Tensor t : tensors) {
            if (t.data() == null) {
                throw new IllegalStateException("a sparse tensor is written by write(Path) only; name=" + t.name());
            }
            out.bytes.write(t.data());
            out.pad();
        }
        return out.bytes.toByteArray();
    }

    /** Everything before the data section, padded to the alignment. */
    private Out header() {
        Out out = new Out();
        out.int32(GgufFile.MAGIC);
        out.int32(version);
        out.int64(tensors.size());
        out.int64(metadata.size());
        for (Map.Entry<String, Object> entry : metadata.entrySet()) {
            out.string(entry.getKey());
            out.value(entry.getValue(), true);
        }
        long offset = 0;
        for (Tensor t : tensors) {
            out.string(t.name());
            out.int32(t.dims().length);
            for (long d : t.dims()) {
                out.int64(d);
            }
            out.int32(t.typeId());
            out.int64(this.offsets.getOrDefault(t.name(), offset));
            offset = align(offset + t.length());
        }
        out.pad();
        return out;
    }

    /** Writes the file; sparse tensors' zeros are left as holes (the file's length set past them). */
    void write(Path file) throws IOException {
        if (tensors.stream().allMatch(t -> t.data() != null)) {
            Files.write(file, bytes());
            return;
        }
        byte[] header = header().bytes.toByteArray();
        try (java.nio.channels.FileChannel channel = java.nio.channels.FileChannel.open(file,
                java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.TRUNCATE_EXISTING,
                java.nio.file.StandardOpenOption.WRITE)) {
            writeAt(channel, header, 0);
            long offset = header.length;
            for (Tensor t : tensors) {
                if (t.data() != null) {
                    writeAt(channel, t.data(), offset);
                } else {
                    for (Map.Entry<Long, byte[]> patch : t.patches().entrySet()) {
                        writeAt(channel, patch.getValue(), offset + patch.getKey());
                    }
                }
                offset += align(t.length());
            }
            if (channel.size() < offset) {
                writeAt(channel, new byte[1], offset - 1);
            }
        }
    }

    private static void writeAt(java.nio.channels.FileChannel channel, byte[] bytes, long position)
            throws IOException {
        ByteBuffer buffer = ByteBuffer.wrap(bytes);
        while (buffer.hasRemaining()) {
            position += channel.write(buffer, position);
        }
    }

    private static long align(long n) {
        return (n + GgufFile.DEFAULT_ALIGNMENT - 1) / GgufFile.DEFAULT_ALIGNMENT * GgufFile.DEFAULT_ALIGNMENT;
    }

    /** The stories260K weights (or any model) as a GGUF file; matrices whose rows fit the type's blocks use it. */
    static GgufWriter of(LlamaModel model, TensorType type) {
        LlamaConfig c = model.config();
        GgufWriter w = new GgufWriter()
                .put("general.architecture", "llama")
                .put("general.name", "stories260K")
                .put("llama.context_length", c.contextLength())
                .put("llama.embedding_length", c.dim())
                .put("llama.feed_forward_length", c.hiddenDim())
                .put("llama.block_count", c.layers())
                .put("llama.attention.head_count", c.heads())
                .put("llama.attention.head_count_kv", c.kvHeads())
                .put("llama.rope.dimension_count", c.ropeDim())
                .put("llama.rope.freq_base", c.ropeBase())
                .put("llama.attention.layer_norm_rms_epsilon", c.normEps());
        LlamaWeights weights = model.weights();
        w.matrix("token_embd.weight", weights.tokenEmbedding(), type);
        for (int l = 0; l < c.layers(); l++) {
            LlamaWeights.Layer layer = weights.layers().get(l);
            String b = "blk." + l + ".";
            w.tensor(b + "attn_norm.weight", TensorType.F32, layer.attentionNorm(), 1, c.dim());
            w.matrix(b + "attn_q.weight", layer.wq(), type);
            w.matrix(b + "attn_k.weight", layer.wk(), type);
            w.matrix(b + "attn_v.weight", layer.wv(), type);
            w.matrix(b + "attn_output.weight", layer.wo(), type);
            w.tensor(b + "ffn_norm.weight", TensorType.F32, layer.ffnNorm(), 1, c.dim());
            w.matrix(b + "ffn_gate.weight", layer.gate(), type);
            w.matrix(b + "ffn_down.weight", layer.down(), type);
            w.matrix(b + "ffn_up.weight", layer.up(), type);
        }
        w.tensor("output_norm.weight", TensorType.F32, weights.finalNorm(), 1, c.dim());
        if (weights.classifier() != weights.tokenEmbedding()) {
            w.matrix("output.weight", weights.classifier(), type);
        }
        return w;
    }

    private void matrix(String name, WeightMatrix m, TensorType type) {
        TensorType used = m.cols() % type.blockSize() == 0 ? type : TensorType.F32;
        tensor(name, used, m.toFloats(), m.rows(), m.cols());
    }

    private static final class Out {
        final ByteArrayOutputStream bytes = new ByteArrayOutputStream();

        void int32(int v) {
            bytes.writeBytes(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(v).array());
        }

        void int64(long v) {
            bytes.writeBytes(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(v).array());
        }

        void string(String s) {
            byte[] utf8 = s.getBytes(StandardCharsets.UTF_8);
            int64(utf8.length);
            bytes.writeBytes(utf8);
        }

        void value(Object v, boolean typed) {
            if (v instanceof String s) {
                if (typed) {
                    int32(GgufFile.STRING);
                }
                string(s);
            } else if (v instanceof Integer i) {
                if (typed) {
                    int32(GgufFile.UINT32);
                }
                int32(i);
            } else if (v instanceof Long l) {
                if (typed) {
                    int32(GgufFile.INT64);
                }
                int64(l);
            } else if (v instanceof Float f) {
                if (typed) {
                    int32(GgufFile.FLOAT32);
                }
                int32(Float.floatToRawIntBits(f));
            } else if (v instanceof Boolean b) {
                if (typed) {
                    int32(GgufFile.BOOL);
                }
                bytes.write(b ? 1 : 0);
            } else if (v instanceof List<?> list) {
                int32(GgufFile.ARRAY);
                Object first = list.isEmpty() ? "" : list.get(0);
                int32(first instanceof String ? GgufFile.STRING : first instanceof Float ? GgufFile.FLOAT32
                        : GgufFile.UINT32);
                int64(list.size());
                for (Object element : list) {
                    value(element, false);
                }
            } else {
                throw new IllegalArgumentException("unsupported metadata value " + v);
            }
        }

        void pad() {
            while (bytes.size() % GgufFile.DEFAULT_ALIGNMENT != 0) {
                bytes.write(0);
            }
        }
    }
}
