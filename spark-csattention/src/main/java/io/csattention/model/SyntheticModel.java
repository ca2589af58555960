package io.csattention.model;

import io.csattention.format.Half;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * Models of published shapes with seeded random weights, held in memory in a quantization mix, for benchmarks:
 * random block bytes (codes, per-block scales and offsets chosen so that every matrix's values have mean about 0 and
 * standard deviation about {@code 1 / sqrt(cols)}), so the forward pass reads and computes exactly what a file of
 * that shape and type makes it read and compute. No tokenizer.
 */
public final class SyntheticModel {

    /** A model shape. */
    public enum Shape {
        /** Llama 3.2 1B: dim 2048, 16 layers, 32 query / 8 KV heads (head_dim 64), hidden 8192, vocabulary 128256. */
        LLAMA32_1B("llama32-1b", new LlamaConfig(2048, 8192, 16, 32, 8, 128256, 131072, 500000f, 64, 1e-5f)),
        /** A small model of the same structure: dim 512, 4 layers, 8 / 2 heads (head_dim 64), hidden 1536. */
        SMALL("small", new LlamaConfig(512, 1536, 4, 8, 2, 32000, 131072, 500000f, 64, 1e-5f));

        private final String id;
        private final LlamaConfig config;

        Shape(String id, LlamaConfig config) {
            this.id = id;
            this.config = config;
        }

        public String id() {
            return id;
        }

        public LlamaConfig config() {
            return config;
        }

        public static Shape parse(String text) {
            for (Shape s : values()) {
                if (s.id.equals(text.trim().toLowerCase(Locale.ROOT))) {
                    return s;
                }
            }
            throw new IllegalArgumentException("shape must be one of " + Arrays.stream(values()).map(Shape::id)
                    .toList() + "; shape=" + text);
        }
    }

    /**
     * A quantization mix as llama.cpp names them: {@code q8_0} (every matrix Q8_0), {@code q4_k_m} / {@code q5_k_m}
     * (Q4_K / Q5_K, with the token embedding, attn_v and ffn_down in Q6_K, as llama.cpp's _M mixes keep the
     * sensitive tensors at 6 bits).
     */
    public enum Quant {
        Q8_0("q8_0", TensorType.Q8_0, TensorType.Q8_0),
        Q4_K_M("q4_k_m", TensorType.Q4_K, TensorType.Q6_K),
        Q5_K_M("q5_k_m", TensorType.Q5_K, TensorType.Q6_K);

        private final String id;
        private final TensorType base;
        private final TensorType sensitive;

        Quant(String id, TensorType base, TensorType sensitive) {
            this.id = id;
            this.base = base;
            this.sensitive = sensitive;
        }

        public String id() {
            return id;
        }

        public static Quant parse(String text) {
            for (Quant q : values()) {
                if (q.id.equals(text.trim().toLowerCase(Locale.ROOT))) {
                    return q;
                }
            }
            throw new IllegalArgumentException("quant must be one of " + Arrays.stream(values()).map(Quant::id)
                    .toList() + "; quant=" + text);
        }
    }

    private SyntheticModel() {
    }

    /** The model of {@code shape} with {@code layers} transformer blocks (0: the shape's), tied embeddings. */
    public static LlamaModel build(Shape shape, int layers, Quant quant, long seed) {
        LlamaConfig c = shape.config();
        LlamaConfig config = new LlamaConfig(c.dim(), c.hiddenDim(), layers > 0 ? layers : c.layers(), c.heads(),
                c.kvHeads(), c.vocabSize(), c.contextLength(), c.ropeBase(), c.ropeDim(), c.normEps());
        SplittableRandom random = new SplittableRandom(seed);
        int dim = config.dim();
        int kvDim = config.kvDim();
        int hidden = config.hiddenDim();
        List<LlamaWeights.Layer> blocks = new ArrayList<>();
        for (int l = 0; l < config.layers(); l++) {
            String p = "blk." + l + ".";
            blocks.add(new LlamaWeights.Layer(ones(dim),
                    matrix(p + "attn_q.weight", quant.base, dim, dim, random),
                    matrix(p + "attn_k.weight", quant.base, kvDim, dim, random),
                    matrix(p + "attn_v.weight", quant.sensitive, kvDim, dim, random),
                    matrix(p + "attn_output.weight", quant.base, dim, dim, random),
                    ones(dim),
                    matrix(p + "ffn_gate.weight", quant.base, hidden, dim, random),
                    matrix(p + "ffn_down.weight", quant.sensitive, dim, hidden, random),
                    matrix(p + "ffn_up.weight", quant.base, hidden, dim, random)));
        }
        WeightMatrix embedding = matrix("token_embd.weight", quant.sensitive, config.vocabSize(), dim, random);
        return new LlamaModel(config, new LlamaWeights(embedding, blocks, ones(dim), embedding, null), null);
    }

    /** The matrices a decode step reads whole: every block's seven, then the classifier (not the embedding). */
    public static List<WeightMatrix> decodeMatrices(LlamaModel model) {
        List<WeightMatrix> out = new ArrayList<>();
        for (LlamaWeights.Layer l : model.weights().layers()) {
            out.addAll(List.of(l.wq(), l.wk(), l.wv(), l.wo(), l.gate(), l.down(), l.up()));
        }
        out.add(model.weights().classifier());
        return out;
    }

    /** Bytes of every weight a decode step reads ({@link #decodeMatrices}). */
    public static long weightBytes(LlamaModel model) {
        return decodeMatrices(model).stream().mapToLong(SyntheticModel::bytes).sum();
    }

    public static long bytes(WeightMatrix m) {
        return m.rows() * m.type().bytes(m.cols());
    }

    private static float[] ones(int n) {
        float[] out = new float[n];
        Arrays.fill(out, 1f);
        return out;
    }

    /** Random blocks of {@code type}, values of mean about 0 and standard deviation about 1 / sqrt(cols). */
    static WeightMatrix matrix(String name, TensorType type, int rows, int cols, SplittableRandom random) {
        long size = rows * type.bytes(cols);
        byte[] data = new byte[Math.toIntExact(size)];
        double target = 1.0 / Math.sqrt(cols);
        int blocks = Math.toIntExact(size / type.blockBytes());
        ByteBuffer b = ByteBuffer.wrap(data).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        byte[] codes = new byte[type.blockBytes()];
        for (int i = 0; i < blocks; i++) {
            int at = i * type.blockBytes();
            random.nextBytes(codes);
            System.arraycopy(codes, 0, data, at, codes.length);
            switch (type) {
                // uniform int8 codes: standard deviation 73.9 d
                case Q8_0 -> b.putShort(at, Half.fromFloat((float) (target / 73.9)));
                // q = nibble + 16 * fifth bit, value d * sc * q - dmin * m with sc = 32, m = 60 and
                // dmin = d * 32 * mean(q) / 60: mean 0, standard deviation d * 32 * std(q)
                case Q4_K, Q5_K -> {
                    double meanQ = type == TensorType.Q4_K ? 7.5 : 15.5;
                    double stdQ = type == TensorType.Q4_K ? 4.61 : 9.23;
                    float d = (float) (target / (32 * stdQ));
                    b.putShort(at, Half.fromFloat(d));
                    b.putShort(at + 2, Half.fromFloat((float) (d * 32 * meanQ / 60)));
                    // the 12 bytes of 6-bit scales and mins (get_scale_min_k4's layout), every sc = 32 and m = 60:
                    // sub-blocks 0..3 in the low 6 bits of bytes 0..3 (sc) and 4..7 (m); sub-blocks 4..7 in the
                    // nibbles of bytes 8..11 and the top 2 bits of bytes 0..3 (sc) and 4..7 (m)
                    for (int j = 0; j < 4; j++) {
                        data[at + 4 + j] = (byte) (32 | (32 >> 4) << 6);
                        data[at + 8 + j] = (byte) (60 | (60 >> 4) << 6);
                        data[at + 12 + j] = (byte) ((32 & 0x0F) | (60 & 0x0F) << 4);
                    }
                }
                // q - 32 uniform in [-32, 31]: standard deviation 18.5 d sc, with sc = 16
                case Q6_K -> {
                    for (int j = 0; j < 16; j++) {
                        data[at + 192 + j] = 16;
                    }
                    b.putShort(at + 208, Half.fromFloat((float) (target / (18.5 * 16))));
                }
                default -> throw new IllegalArgumentException("synthetic weights for " + type + " are not made");
            }
        }
        return WeightMatrix.of(name, type, rows, cols, b);
    }
}
