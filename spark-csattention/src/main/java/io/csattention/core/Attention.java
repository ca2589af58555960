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
            softmax(kernels, scores, g * n, n, scale);
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
     * Exact attention of the {@code group} query heads of one KV head over one shared selection (the non-negative
     * entries of {@code selected}, as {@link CSAttentionSelector#selectShared} gives): {@code out[outOff + g*d ..) =
     * softmax(q_g K_S^T / sqrt(d)) V_S}. Each selected row is gathered (and widened when half) once for the group, in
     * chunks, and scored and summed as {@link #attendGroup}'s tiles. Returns the number of keys attended.
     */
    public static int attendShared(VectorKernels kernels, float[] q, int qOff, int group, KeyValueCache cache,
                                   int[] selected, float[] out, int outOff) {
        int d = cache.dim();
        int n = 0;
        while (n < selected.length && selected[n] >= 0) {
            n++;
        }
        java.util.Arrays.fill(out, outOff, outOff + group * d, 0f);
        if (n == 0) {
            return 0;
        }
        float[][] scratch = GROUP_SCRATCH.get();
        if (scratch[0].length < group * n) {
            scratch[0] = new float[Math.max(group * n, Math.min(2 * scratch[0].length, 1 << 24))];
        }
        if (scratch[1].length < GROUP_CHUNK * d) {
            scratch[1] = new float[GROUP_CHUNK * d];
        }
        float[] scores = scratch[0];
        float[] chunk = scratch[1];
        for (int from = 0; from < n; from += GROUP_CHUNK) {
            int c = Math.min(GROUP_CHUNK, n - from);
            cache.keyRowsAt(kernels, selected, from, c, chunk);
            kernels.dotBlock(q, qOff, d, group, chunk, d, d, 0, c, scores, from, n);
        }
        float scale = (float) (1.0 / Math.sqrt(d));
        for (int g = 0; g < group; g++) {
            softmax(kernels, scores, g * n, n, scale);
        }
        for (int from = 0; from < n; from += GROUP_CHUNK) {
            int c = Math.min(GROUP_CHUNK, n - from);
            cache.valueRowsAt(kernels, selected, from, c, chunk);
            kernels.addWeightedRows(scores, from, n, group, chunk, d, d, 0, c, out, outOff, d);
        }
        return n;
    }

    /** Keys per chunk of {@link #attendCausal}: transposed, 32 KB at d = 64, in L1 while the tile's queries use it. */
    private static final int CAUSAL_CHUNK = 128;
    private static final ThreadLocal<float[][]> CAUSAL_SCRATCH = ThreadLocal.withInitial(() -> new float[3][0]);

    /**
     * Causal exact attention of a tile of {@code tokens} consecutive query tokens, each with the {@code group} query
     * heads that share one KV head (the prefill of a context): token t's queries are
     * {@code q[qOff + t*tokenStride + g*d ..)} for g in [0, group), it attends keys [0, first + t) of {@code cache},
     * and its outputs go to the same places of {@code out}. Each key chunk is widened and transposed once for the
     * whole tile and scored by {@link VectorKernels#dotTransposed} (lanes are keys: no horizontal sums); the softmax
     * is exact over each query's whole prefix, then V chunks are added with {@link VectorKernels#addWeightedRows}.
     * A query's result depends only on its data, its place in its token's group and its prefix length, not on the
     * tile: prefilling in any split gives the same bits. The scores are summed in a different order than
     * {@link #attendGroup}'s (decode), so a prefill and a decode step of the same token agree within rounding.
     */
    public static void attendCausal(VectorKernels kernels, float[] q, int qOff, int tokenStride, int tokens,
                                    int group, KeyValueCache cache, int first, float[] out, int outOff) {
        if (tokens <= 0) {
            return;
        }
        if (first < 1) {
            throw new IllegalArgumentException("a causal tile's first token must see at least one key; first="
                    + first);
        }
        int d = cache.dim();
        int n = first + tokens - 1;
        if (n > cache.size()) {
            throw new IllegalArgumentException("the tile attends " + n + " keys but the cache holds " + cache.size());
        }
        int queries = tokens * group;
        float[][] scratch = CAUSAL_SCRATCH.get();
        if (scratch[0].length < (long) queries * n) {
            // grown ahead (a prefill's n rises by a block at a time): not a new buffer per block
            int need = Math.multiplyExact(queries, n);
            scratch[0] = new float[Math.max(need, (int) Math.min(2L * scratch[0].length, 1 << 26))];
        }
        if (scratch[1].length < CAUSAL_CHUNK * d) {
            scratch[1] = new float[CAUSAL_CHUNK * d];
            scratch[2] = new float[CAUSAL_CHUNK * d];
        }
        float[] scores = scratch[0];
        float[] rows = scratch[1];
        float[] kt = scratch[2];
        for (int from = 0; from < n; from += CAUSAL_CHUNK) {
            int c = Math.min(CAUSAL_CHUNK, n - from);
            cache.keyRows(kernels, from, c, rows, 0);
            for (int j = 0; j < c; j++) {
                for (int e = 0, r = j * d; e < d; e++, r++) {
                    kt[e * CAUSAL_CHUNK + j] = rows[r];
                }
            }
            for (int t = Math.max(0, from + 1 - first); t < tokens; t++) {
                int keys = Math.min(c, first + t - from);
                kernels.dotTransposed(q, qOff + t * tokenStride, d, group, kt, 0, CAUSAL_CHUNK, d, keys, scores,
                        t * group * n + from, n);
            }
        }
        float scale = (float) (1.0 / Math.sqrt(d));
        for (int t = 0; t < tokens; t++) {
            int keys = first + t;
            for (int g = 0; g < group; g++) {
                softmax(kernels, scores, (t * group + g) * n, keys, scale);
            }
            java.util.Arrays.fill(out, outOff + t * tokenStride, outOff + t * tokenStride + group * d, 0f);
        }
        for (int from = 0; from < n; from += CAUSAL_CHUNK) {
            int c = Math.min(CAUSAL_CHUNK, n - from);
            cache.valueRows(kernels, from, c, rows, 0);
            for (int t = Math.max(0, from + 1 - first); t < tokens; t++) {
                int keys = Math.min(c, first + t - from);
                kernels.addWeightedRows(scores, t * group * n + from, n, group, rows, d, d, 0, keys, out,
                        outOff + t * tokenStride, d);
            }
        }
    }

    /**
     * {@code softmax(scores / sqrt(d)) V_S} into {@code out[outOff .. outOff+d)} for the first {@code count} keys of
     * {@code selected} and their raw scores {@code q . k} (overwritten with the weights).
     */
    private static void softmaxSum(VectorKernels kernels, float[] scores, KeyValueCache cache, int[] selected,
                                  int count, float[] out, int outOff) {
        softmax(kernels, scores, 0, count, (float) (1.0 / Math.sqrt(cache.dim())));
        cache.sumSelectedValues(kernels, scores, selected, count, out, outOff);
    }

    /**
     * Softmax in place of {@code scores[off .. off+n)} scaled by {@code scale}: scaled, shifted by their maximum,
     * exponentiated and divided by the sum. expShifted rounds the same interpreted and compiled
     * (KernelDeterminismTest): a query attends to the same output however warm the JIT is.
     */
    private static void softmax(VectorKernels kernels, float[] scores, int off, int n, float scale) {
        for (int j = off; j < off + n; j++) {
            scores[j] *= scale;
        }
        float inv = 1f / kernels.expShifted(scores, off, n, kernels.max(scores, off, n));
        for (int j = off; j < off + n; j++) {
            scores[j] *= inv;
        }
    }
}
