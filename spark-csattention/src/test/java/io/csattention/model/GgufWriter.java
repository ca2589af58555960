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
 * A small GGUF v3 writer for tests (the layout is documented on {@link GgufFile}): string, uint32, float32 and
 * array metadata; tensors in F32, F16, BF16, Q8_0 and Q4_0 (quantized as llama.cpp's reference quantizers do), or
 * raw bytes of any type id.
 */
final class GgufWriter {

    private record Tensor(String name, long[] dims, int typeId, byte[] data) {
    }

    private final Map<String, Object> metadata = new LinkedHashMap<>();
    private final List<Tensor> tensors = new ArrayList<>();
    private int version = 3;

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
        }
        return out.array();
    }

    byte[] bytes() throws IOException {
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
        List<Long> offsets = new ArrayList<>();
        for (Tensor t : tensors) {
            out.string(t.name());
            out.int32(t.dims().length);
            for (long d : t.dims()) {
                out.int64(d);
            }
            out.int32(t.typeId());
            out.int64(offset);
            offsets.add(offset);
            offset = align(offset + t.data().length);
        }
        out.pad();
        for (int i = 0; i < tensors.size(); i++) {
            out.bytes.write(tensors.get(i).data());
            out.pad();
        }
        return out.bytes.toByteArray();
    }

    void write(Path file) throws IOException {
        Files.write(file, bytes());
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
            } else if (v instanceof Float f) {
                if (typed) {
                    int32(GgufFile.FLOAT32);
                }
                int32(Float.floatToRawIntBits(f));
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
