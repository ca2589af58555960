package io.csattention.model;

/**
 * An independent float64 forward pass written as plainly as possible (one token at a time, loops only), to check
 * {@link Session}'s float32 blocked implementation. It reads weights through {@link WeightMatrix#row} only.
 */
final class ReferenceLlama {

    private ReferenceLlama() {
    }

    /** The logits after feeding every token of {@code tokens} from position 0. */
    static double[] logits(LlamaModel model, int[] tokens) {
        LlamaConfig c = model.config();
        LlamaWeights w = model.weights();
        int dim = c.dim();
        int hs = c.headSize();
        int kvDim = c.kvDim();
        int n = tokens.length;
        double[][][] keys = new double[c.layers()][n][kvDim];
        double[][][] values = new double[c.layers()][n][kvDim];
        double[] x = null;
        for (int pos = 0; pos < n; pos++) {
            x = row(w.tokenEmbedding(), tokens[pos]);
            for (int l = 0; l < c.layers(); l++) {
                LlamaWeights.Layer layer = w.layers().get(l);
                double[] xb = rmsNorm(x, layer.attentionNorm(), c.normEps());
                double[] q = times(layer.wq(), xb);
                double[] k = times(layer.wk(), xb);
                double[] v = times(layer.wv(), xb);
                rotate(q, pos, hs, c.ropeBase());
                rotate(k, pos, hs, c.ropeBase());
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
                double[] o = times(layer.wo(), att);
                for (int i = 0; i < dim; i++) {
                    x[i] += o[i];
                }
                xb = rmsNorm(x, layer.ffnNorm(), c.normEps());
                double[] gate = times(layer.gate(), xb);
                double[] up = times(layer.up(), xb);
                for (int i = 0; i < gate.length; i++) {
                    gate[i] = gate[i] / (1 + Math.exp(-gate[i])) * up[i];
                }
                double[] down = times(layer.down(), gate);
                for (int i = 0; i < dim; i++) {
                    x[i] += down[i];
                }
            }
        }
        return times(w.classifier(), rmsNorm(x, w.finalNorm(), c.normEps()));
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

    private static double[] times(WeightMatrix m, double[] x) {
        double[] out = new double[m.rows()];
        for (int r = 0; r < m.rows(); r++) {
            double[] w = row(m, r);
            for (int i = 0; i < x.length; i++) {
                out[r] += w[i] * x[i];
            }
        }
        return out;
    }

    private static double[] rmsNorm(double[] x, float[] weight, double eps) {
        double ss = 0;
        for (double v : x) {
            ss += v * v;
        }
        double scale = 1 / Math.sqrt(ss / x.length + eps);
        double[] out = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            out[i] = weight[i] * x[i] * scale;
        }
        return out;
    }

    /** llama2.c's RoPE: pairs (2i, 2i+1) of every head turn by pos * base^(-2i / headSize). */
    private static void rotate(double[] v, int pos, int headSize, double base) {
        for (int i = 0; i < v.length; i += 2) {
            int headDim = i % headSize;
            double angle = pos * Math.pow(base, -(double) headDim / headSize);
            double v0 = v[i];
            double v1 = v[i + 1];
            v[i] = v0 * Math.cos(angle) - v1 * Math.sin(angle);
            v[i + 1] = v0 * Math.sin(angle) + v1 * Math.cos(angle);
        }
    }
}
