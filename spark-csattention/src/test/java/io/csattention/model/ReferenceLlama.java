package io.csattention.model;

import io.csattention.core.KeyValueCache;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.HashMap;
import java.util.Map;
import java.util.function.Function;

/**
 * An independent float64 forward pass written as plainly as possible (one token at a time, loops only), to check
 * {@link Session}'s float32 blocked implementation. It reads weights through {@link WeightMatrix#row} only, by their
 * GGUF names: either a loaded model's, or the tensors of a GGUF file as stored ({@link #logits(Path, int[])}, which
 * shares nothing with {@link GgufModel}'s loading: its own metadata reads, Q/K/V biases, and NEOX RoPE on the
 * file's row order for {@code qwen2}).
 */
final class ReferenceLlama {

    private ReferenceLlama() {
    }

    /**
     * What the reference needs: the shape, the RoPE pairing ({@code neox}: (i, i + ropeDim / 2), else (2i, 2i + 1)),
     * the per-pair frequency divisors (null: none), and tensors by GGUF name (null when absent).
     */
    private record Spec(LlamaConfig config, boolean neox, float[] ropeDivisors,
                        Function<String, WeightMatrix> tensors, KeyValueCache.Precision kv) {
    }

    /**
     * {@code x} rounded to the nearest value of the KV cache's storage, to nearest even, by the formats'
     * definitions: float32 is kept in float64; float16 keeps 11 significant bits down to 2^-14 and steps of 2^-24
     * below; bfloat16 keeps 8 significant bits.
     */
    static double storedKv(double x, KeyValueCache.Precision kv) {
        if (kv == KeyValueCache.Precision.F32 || x == 0 || !Double.isFinite(x)) {
            return x; // float32 storage: the reference keeps float64, as it always has
        }
        int bits = kv == KeyValueCache.Precision.F16 ? 11 : 8;
        int exponent = Math.getExponent(x);
        if (kv == KeyValueCache.Precision.F16) {
            exponent = Math.max(exponent, -14);
        }
        double step = Math.scalb(1.0, exponent - (bits - 1));
        return Math.rint(x / step) * step;
    }

    /** The logits after feeding every token of {@code tokens} from position 0, K and V stored as the model's. */
    static double[] logits(LlamaModel model, int[] tokens) {
        return logits(model, tokens, model.kvPrecision());
    }

    /** As {@link #logits(LlamaModel, int[])} with K and V stored in {@code kv}. */
    static double[] logits(LlamaModel model, int[] tokens, KeyValueCache.Precision kv) {
        LlamaWeights w = model.weights();
        Map<String, WeightMatrix> byName = new HashMap<>();
        byName.put("token_embd.weight", w.tokenEmbedding());
        byName.put("output.weight", w.classifier());
        byName.put("output_norm.weight", vector(w.finalNorm()));
        for (int l = 0; l < w.layers().size(); l++) {
            LlamaWeights.Layer layer = w.layers().get(l);
            String b = "blk." + l + ".";
            byName.put(b + "attn_norm.weight", vector(layer.attentionNorm()));
            byName.put(b + "attn_q.weight", layer.wq());
            byName.put(b + "attn_k.weight", layer.wk());
            byName.put(b + "attn_v.weight", layer.wv());
            byName.put(b + "attn_output.weight", layer.wo());
            byName.put(b + "ffn_norm.weight", vector(layer.ffnNorm()));
            byName.put(b + "ffn_gate.weight", layer.gate());
            byName.put(b + "ffn_down.weight", layer.down());
            byName.put(b + "ffn_up.weight", layer.up());
        }
        return logits(new Spec(model.config(), false, w.ropeDivisors(), byName::get, kv), tokens);
    }

    /**
     * The logits of the GGUF file's model ({@code llama} or {@code qwen2}) after {@code tokens}, from its metadata
     * and stored tensors: tied output when {@code output.weight} is absent, {@code rope_freqs.weight} divisors.
     */
    static double[] logits(Path file, int[] tokens) throws IOException {
        return logits(file, tokens, KeyValueCache.Precision.DEFAULT);
    }

    /** As {@link #logits(Path, int[])} with K and V stored in {@code kv}. */
    static double[] logits(Path file, int[] tokens, KeyValueCache.Precision kv) throws IOException {
        GgufFile gguf = GgufFile.read(file);
        String arch = gguf.string("general.architecture");
        String p = arch + ".";
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            Function<String, WeightMatrix> tensors = name -> {
                if (!gguf.tensors().containsKey(name)) {
                    return null;
                }
                try {
                    return gguf.matrix(channel, name);
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            };
            int dim = (int) gguf.integer(p + "embedding_length", Long.MIN_VALUE);
            int heads = (int) gguf.integer(p + "attention.head_count", Long.MIN_VALUE);
            WeightMatrix embedding = tensors.apply("token_embd.weight");
            LlamaConfig config = new LlamaConfig(dim, (int) gguf.integer(p + "feed_forward_length", Long.MIN_VALUE),
                    (int) gguf.integer(p + "block_count", Long.MIN_VALUE), heads,
                    (int) gguf.integer(p + "attention.head_count_kv", heads), embedding.rows(),
                    (int) gguf.integer(p + "context_length", Long.MIN_VALUE),
                    (float) gguf.real(p + "rope.freq_base", 10000), (int) gguf.integer(p + "rope.dimension_count",
                    dim / heads), (float) gguf.real(p + "attention.layer_norm_rms_epsilon", 1e-5));
            WeightMatrix divisors = tensors.apply("rope_freqs.weight");
            Function<String, WeightMatrix> tied = name -> {
                WeightMatrix m = tensors.apply(name);
                return m == null && name.equals("output.weight") ? embedding : m;
            };
            return logits(new Spec(config, arch.equals("qwen2"), divisors == null ? null : divisors.toFloats(), tied,
                    kv), tokens);
        }
    }

    private static double[] logits(Spec spec, int[] tokens) {
        LlamaConfig c = spec.config();
        Function<String, WeightMatrix> w = spec.tensors();
        int dim = c.dim();
        int hs = c.headSize();
        int kvDim = c.kvDim();
        int n = tokens.length;
        double[][][] keys = new double[c.layers()][n][kvDim];
        double[][][] values = new double[c.layers()][n][kvDim];
        double[] x = null;
        for (int pos = 0; pos < n; pos++) {
            x = row(w.apply("token_embd.weight"), tokens[pos]);
            for (int l = 0; l < c.layers(); l++) {
                String b = "blk." + l + ".";
                double[] xb = rmsNorm(x, w.apply(b + "attn_norm.weight"), c.normEps());
                double[] q = times(w.apply(b + "attn_q.weight"), xb, w.apply(b + "attn_q.bias"));
                double[] k = times(w.apply(b + "attn_k.weight"), xb, w.apply(b + "attn_k.bias"));
                double[] v = times(w.apply(b + "attn_v.weight"), xb, w.apply(b + "attn_v.bias"));
                rotate(q, pos, spec);
                rotate(k, pos, spec);
                for (int i = 0; i < kvDim; i++) {
                    k[i] = storedKv(k[i], spec.kv());
                    v[i] = storedKv(v[i], spec.kv());
                }
                keys[l][pos] = k;
                values[l][pos] = v;
                double[] att = new double[dim];
                for (int h = 0; h < c.heads(); h++) {
                    int kvOff = (h / c.groupSize()) * hs;
                    double[] scores = new double[pos + 1];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int t = 0; t <= pos; t++) {
                        double s = 0;
                        for (int i = 0; i < hs; i++) {
                            s += q[h * hs + i] * keys[l][t][kvOff + i];
                        }
                        scores[t] = s / Math.sqrt(hs);
                        max = Math.max(max, scores[t]);
                    }
                    double total = 0;
                    for (int t = 0; t <= pos; t++) {
                        scores[t] = Math.exp(scores[t] - max);
                        total += scores[t];
                    }
                    for (int t = 0; t <= pos; t++) {
                        for (int i = 0; i < hs; i++) {
                            att[h * hs + i] += scores[t] / total * values[l][t][kvOff + i];
                        }
                    }
                }
                double[] o = times(w.apply(b + "attn_output.weight"), att, null);
                for (int i = 0; i < dim; i++) {
                    x[i] += o[i];
                }
                xb = rmsNorm(x, w.apply(b + "ffn_norm.weight"), c.normEps());
                double[] gate = times(w.apply(b + "ffn_gate.weight"), xb, null);
                double[] up = times(w.apply(b + "ffn_up.weight"), xb, null);
                for (int i = 0; i < gate.length; i++) {
                    gate[i] = gate[i] / (1 + Math.exp(-gate[i])) * up[i];
                }
                double[] down = times(w.apply(b + "ffn_down.weight"), gate, null);
                for (int i = 0; i < dim; i++) {
                    x[i] += down[i];
                }
            }
        }
        return times(w.apply("output.weight"), rmsNorm(x, w.apply("output_norm.weight"), c.normEps()), null);
    }

    private static WeightMatrix vector(float[] v) {
        return WeightMatrix.ofFloats("vector", 1, v.length, v);
    }

    private static double[] row(WeightMatrix m, int r) {
        float[] f = new float[m.cols()];
        m.row(r, f);
        double[] out = new double[f.length];
        for (int i = 0; i < f.length; i++) {
            out[i] = f[i];
        }
        return out;
    }

    /** m x, plus {@code bias} (a [1, rows] tensor) when not null. */
    private static double[] times(WeightMatrix m, double[] x, WeightMatrix bias) {
        double[] out = new double[m.rows()];
        double[] add = bias == null ? new double[m.rows()] : row(bias, 0);
        for (int r = 0; r < m.rows(); r++) {
            double[] w = row(m, r);
            for (int i = 0; i < x.length; i++) {
                out[r] += w[i] * x[i];
            }
            out[r] += add[r];
        }
        return out;
    }

    private static double[] rmsNorm(double[] x, WeightMatrix weight, double eps) {
        double[] g = row(weight, 0);
        double ss = 0;
        for (double v : x) {
            ss += v * v;
        }
        double scale = 1 / Math.sqrt(ss / x.length + eps);
        double[] out = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            out[i] = g[i] * x[i] * scale;
        }
        return out;
    }

    /**
     * RoPE on every head: pair i of the first ropeDim dimensions turns by pos * base^(-2i / ropeDim) / divisor[i];
     * the pair is (2i, 2i + 1) (llama2.c, GGUF llama) or (i, i + ropeDim / 2) (NEOX, GGUF qwen2).
     */
    private static void rotate(double[] v, int pos, Spec spec) {
        LlamaConfig c = spec.config();
        int half = c.ropeDim() / 2;
        for (int head = 0; head < v.length / c.headSize(); head++) {
            int base = head * c.headSize();
            for (int i = 0; i < half; i++) {
                double divisor = spec.ropeDivisors() == null ? 1 : spec.ropeDivisors()[i];
                double angle = pos * Math.pow(c.ropeBase(), -2.0 * i / c.ropeDim()) / divisor;
                int a = spec.neox() ? base + i : base + 2 * i;
                int b = spec.neox() ? base + i + half : base + 2 * i + 1;
                double v0 = v[a];
                double v1 = v[b];
                v[a] = v0 * Math.cos(angle) - v1 * Math.sin(angle);
                v[b] = v0 * Math.sin(angle) + v1 * Math.cos(angle);
            }
        }
    }
}
