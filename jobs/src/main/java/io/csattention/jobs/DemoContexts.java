package io.csattention.jobs;

import io.csattention.core.FloatMatrix;

import java.util.SplittableRandom;

/**
 * The demo's seeded tensor-level contexts: per head, keys in topic segments (each segment's keys share one of
 * {@value #TOPICS} directions), a constant key offset (the query/key distribution shift that makes raw key
 * clustering a poor guide to what queries attend), a strong first key (an attention sink), and a few rare "needle"
 * keys that some decode queries look for. Prefill and decode queries are drawn around the topic directions, a
 * share of the decode queries around the needles. Position-free (no RoPE). Small by design: it shows the pipeline,
 * the evaluation commands measure accuracy on long contexts.
 */
final class DemoContexts implements java.io.Serializable {

    static final int TOPICS = 16;
    static final int NEEDLES = 4;
    static final int SEGMENT = 64;

    final int tokens;
    final int dim;
    final long seed;

    DemoContexts(int tokens, int dim, long seed) {
        this.tokens = tokens;
        this.dim = dim;
        this.seed = seed;
    }

    /** One head's tensors. */
    record Head(FloatMatrix keys, FloatMatrix values, FloatMatrix prefillQueries, FloatMatrix queries) {
    }

    Head head(int context, int layer, int kvHead, int queries) {
        SplittableRandom r = new SplittableRandom(seed * 1_000_003L + (context * 131L + layer) * 131L + kvHead);
        float[][] topics = new float[TOPICS][];
        for (int t = 0; t < TOPICS; t++) {
            topics[t] = gaussian(r, 1.0);
        }
        float[][] needles = new float[NEEDLES][];
        for (int n = 0; n < NEEDLES; n++) {
            needles[n] = gaussian(r, 1.0);
        }
        float[] offset = gaussian(r, 0.8);
        float[] keys = new float[tokens * dim];
        int[] needleAt = new int[NEEDLES];
        for (int n = 0; n < NEEDLES; n++) {
            needleAt[n] = 1 + r.nextInt(tokens - 1);
        }
        for (int i = 0; i < tokens; i++) {
            float[] topic = topics[Math.floorMod((i / SEGMENT) * 7 + context, TOPICS)];
            for (int c = 0; c < dim; c++) {
                keys[i * dim + c] = (float) (topic[c] + 0.9 * r.nextGaussian() + offset[c]);
            }
        }
        for (int n = 0; n < NEEDLES; n++) {
            for (int c = 0; c < dim; c++) {
                keys[needleAt[n] * dim + c] = (float) (2.5 * needles[n][c] + 0.3 * r.nextGaussian() + offset[c]);
            }
        }
        for (int c = 0; c < dim; c++) {
            keys[c] = (float) (1.5 * offset[c] + 0.5 * r.nextGaussian());
        }
        float[] values = gaussian(r, tokens, 1.0);
        FloatMatrix prefill = queries(r, topics, needles, Math.max(1, tokens / 4), 0.0);
        FloatMatrix decode = queries(r, topics, needles, queries, 0.125);
        return new Head(new FloatMatrix(tokens, dim, keys), new FloatMatrix(tokens, dim, values), prefill, decode);
    }

    private FloatMatrix queries(SplittableRandom r, float[][] topics, float[][] needles, int count,
                                double needleShare) {
        float[] q = new float[count * dim];
        for (int i = 0; i < count; i++) {
            boolean needle = r.nextDouble() < needleShare;
            float[] center = needle ? needles[r.nextInt(NEEDLES)] : topics[r.nextInt(TOPICS)];
            double scale = needle ? 1.5 : 1.2;
            for (int c = 0; c < dim; c++) {
                q[i * dim + c] = (float) (scale * center[c] + 0.8 * r.nextGaussian());
            }
        }
        return new FloatMatrix(count, dim, q);
    }

    private float[] gaussian(SplittableRandom r, double scale) {
        return gaussian(r, 1, scale);
    }

    private float[] gaussian(SplittableRandom r, int rows, double scale) {
        float[] out = new float[rows * dim];
        for (int i = 0; i < out.length; i++) {
            out[i] = (float) (scale * r.nextGaussian());
        }
        return out;
    }
}
