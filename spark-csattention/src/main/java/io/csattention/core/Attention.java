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
