package io.csattention.core;

import io.csattention.kernel.VectorKernels;

/** Exact softmax attention (scale 1/sqrt(d)) of one query over a chosen set of keys of a cache. */
public final class Attention {

    private Attention() {
    }

    /**
     * Writes {@code softmax(q K_S^T / sqrt(d)) V_S} into {@code out[outOff .. outOff+d)}, S being the non-negative
     * entries of {@code selected}. Returns the number of keys attended.
     */
    public static int attend(VectorKernels kernels, float[] query, int queryOff, KeyValueCache cache, int[] selected,
                             float[] out, int outOff) {
        int d = cache.dim();
        int count = 0;
        while (count < selected.length && selected[count] >= 0) {
            count++;
        }
        java.util.Arrays.fill(out, outOff, outOff + d, 0f);
        if (count == 0) {
            return 0;
        }
        float[] scores = new float[count];
        cache.dotSelectedKeys(kernels, query, queryOff, selected, count, scores);
        softmaxSum(kernels, scores, cache, selected, count, out, outOff);
        return count;
    }

    /** Keys per pass of {@link #attendGroup}: a half cache's chunk widened once, 32 KB at d = 64. */
    private static final int GROUP_CHUNK = 128;
    private static final ThreadLocal<float[][]> GROUP_SCRATCH = ThreadLocal.withInitial(() -> new float[2][0]);

    /**
     * Exact attention of the {@code group} query heads that share one KV head (grouped-query attention) over keys
     * [0, n) of {@code cache}: {@code out[outOff + g*d ..) = softmax(q_g K^T / sqrt(d)) V} for the queries
     * {@code q[qOff + g*d ..)}. K and V are read once for the group, in chunks (widened once per chunk when half),
     * as {@link VectorKernels#dotBlock} and {@link VectorKernels#addWeightedRows} tiles. Each query's result depends
     * only on its data, its place in the group and n, so a prefill, a decode step and any batch give the same bits.
     */
    public static void attendGroup(VectorKernels kernels, float[] q, int qOff, int group, KeyValueCache cache, int n,
                                   float[] out, int outOff) {
        int d = cache.dim();
        float[][] scratch = GROUP_SCRATCH.get();
        if (scratch[0].length < group * n) {
            scratch[0] = new float[Math.max(group * n, Math.min(2 * scratch[0].length, 1 << 24))];
        }
        if (scratch[1].length < GROUP_CHUNK * d) {
            scratch[1] = new float[GROUP_CHUNK * d];
        }
        float[] scores = scratch[0];
        float[] chunk = scratch[1];
        boolean f32 = cache.precision() == KeyValueCache.Precision.F32;
        for (int from = 0; from < n; from += GROUP_CHUNK) {
            int c = Math.min(GROUP_CHUNK, n - from);
            if (f32) {
                kernels.dotBlock(q, qOff, d, group, cache.keys(), d, d, from, c, scores, from, n);
            } else {
                cache.keyRows(kernels, from, c, chunk, 0);
                kernels.dotBlock(q, qOff, d, group, chunk, d, d, 0, c, scores, from, n);
            }
        }
        float scale = (float) (1.0 / Math.sqrt(d));
        for (int g = 0; g < group; g++) {
            int off = g * n;
            for (int j = off; j < off + n; j++) {
                scores[j] *= scale;
            }
            float max = kernels.max(scores, off, n);
            float inv = 1f / kernels.expShifted(scores, off, n, max);
            for (int j = off; j < off + n; j++) {
                scores[j] *= inv;
            }
        }
        java.util.Arrays.fill(out, outOff, outOff + group * d, 0f);
        for (int from = 0; from < n; from += GROUP_CHUNK) {
            int c = Math.min(GROUP_CHUNK, n - from);
            if (f32) {
                kernels.addWeightedRows(scores, from, n, group, cache.values(), d, d, from, c, out, outOff, d);
            } else {
                cache.valueRows(kernels, from, c, chunk, 0);
                kernels.addWeightedRows(scores, from, n, group, chunk, d, d, 0, c, out, outOff, d);
            }
        }
    }

    /**
     * {@code softmax(scores / sqrt(d)) V_S} into {@code out[outOff .. outOff+d)} for the first {@code count} keys of
     * {@code selected} and their raw scores {@code q . k} (overwritten with the weights).
     */
    private static void softmaxSum(VectorKernels kernels, float[] scores, KeyValueCache cache, int[] selected,
                                  int count, float[] out, int outOff) {
        int d = cache.dim();
        float scale = (float) (1.0 / Math.sqrt(d));
        for (int j = 0; j < count; j++) {
            scores[j] *= scale;
        }
        // expShifted rounds the same interpreted and compiled (KernelDeterminismTest): a query decodes to the same
        // output however warm the JIT is
        float total = kernels.expShifted(scores, 0, count, kernels.max(scores, 0, count));
        float inv = 1f / total;
        for (int j = 0; j < count; j++) {
            scores[j] *= inv;
        }
        cache.sumSelectedValues(kernels, scores, selected, count, out, outOff);
    }
}
