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
        attendGroups(kernels, q, new int[] {qOff}, group, null, 0, new KeyValueCache[] {cache}, new int[] {n}, out,
                new int[] {outOff});
    }

    /**
     * {@link #attendGroup} of several sequences at once, sequence s with queries at {@code qOffs[s]}, keys [0,
     * ns[s]) of {@code caches[s]} and outputs at {@code outOffs[s]}, where every cache's rows [0, sharedRows) hold
     * what {@code shared}'s hold (forks of one context, which share or copy its K and V). A chunk of keys inside those
     * rows is read (and widened when half) once from {@code shared} for all the sequences, the context's float16
     * widening and its memory reads being most of exact attention's work; the other chunks come from each
     * sequence's own cache. Every sequence's products are {@link #attendGroup}'s calls on the same values in the
     * same chunks, so the bits are those of each sequence alone. {@code shared} may be null (sharedRows 0).
     */
    public static void attendGroups(VectorKernels kernels, float[] q, int[] qOffs, int group, KeyValueCache shared,
                                    int sharedRows, KeyValueCache[] caches, int[] ns, float[] out, int[] outOffs) {
        int sequences = caches.length;
        int d = caches[0].dim();
        int longest = 0;
        for (int s = 0; s < sequences; s++) {
            Check.that(caches[s].dim() == d, "a shared attention's caches must have one dim " + d, "dim",
                    caches[s].dim());
            Check.that(ns[s] >= sharedRows && ns[s] <= caches[s].size(), "a shared attention's sequences attend "
                    + "at least the shared rows " + sharedRows + " and at most their cache", "n", ns[s]);
            longest = Math.max(longest, ns[s]);
        }
        Check.that(shared == null ? sharedRows == 0 : sharedRows <= shared.size() && shared.dim() == d
                && shared.precision() == caches[0].precision(), "the shared rows must be in the shared cache",
                "sharedRows", sharedRows);
        float[][] scratch = GROUP_SCRATCH.get();
        if (scratch[1].length < GROUP_CHUNK * d) {
            scratch[1] = new float[GROUP_CHUNK * d];
        }
        float[] chunk = scratch[1];
        float[][] scores = groupScores(sequences, group, ns);
        sharedPass(kernels, false, q, qOffs, group, shared, sharedRows, caches, ns, longest, chunk, scores, out,
                outOffs);
        float scale = (float) (1.0 / Math.sqrt(d));
        for (int s = 0; s < sequences; s++) {
            for (int g = 0; g < group; g++) {
                softmax(kernels, scores[s], g * ns[s], ns[s], scale);
            }
            java.util.Arrays.fill(out, outOffs[s], outOffs[s] + group * d, 0f);
        }
        sharedPass(kernels, true, q, qOffs, group, shared, sharedRows, caches, ns, longest, chunk, scores, out,
                outOffs);
    }

    /**
     * One pass of {@link #attendGroups} over the chunks: the scores (keys) or the weighted sums (values), a chunk
     * of context rows read once from {@code shared} for every sequence.
     */
    private static void sharedPass(VectorKernels kernels, boolean values, float[] q, int[] qOffs, int group,
                                   KeyValueCache shared, int sharedRows, KeyValueCache[] caches, int[] ns,
                                   int longest, float[] chunk, float[][] scores, float[] out, int[] outOffs) {
        int d = caches[0].dim();
        boolean f32 = caches[0].precision() == KeyValueCache.Precision.F32;
        for (int from = 0; from < longest; from += GROUP_CHUNK) {
            boolean common = from + GROUP_CHUNK <= sharedRows;
            if (common && !f32) {
                rows(kernels, values, shared, from, GROUP_CHUNK, chunk);
            }
            for (int s = 0; s < caches.length; s++) {
                int n = ns[s];
                if (from >= n) {
                    continue;
                }
                int c = Math.min(GROUP_CHUNK, n - from);
                KeyValueCache cache = common ? shared : caches[s];
                if (!f32 && !common) {
                    rows(kernels, values, cache, from, c, chunk);
                }
                float[] source = f32 ? (values ? cache.values() : cache.keys()) : chunk;
                int first = f32 ? from : 0;
                if (values) {
                    kernels.addWeightedRows(scores[s], from, n, group, source, d, d, first, c, out, outOffs[s], d);
                } else {
                    kernels.dotBlock(q, qOffs[s], d, group, source, d, d, first, c, scores[s], from, n);
                }
            }
        }
    }

    private static void rows(VectorKernels kernels, boolean values, KeyValueCache cache, int from, int count,
                             float[] dst) {
        if (values) {
            cache.valueRows(kernels, from, count, dst, 0);
        } else {
            cache.keyRows(kernels, from, count, dst, 0);
        }
    }

    /** Per-thread score rows [group * ns[s]] of {@link #attendGroups}, kept between calls (grown, at most 2^24). */
    private static float[][] groupScores(int sequences, int group, int[] ns) {
        float[][] rows = GROUP_SCORES.get();
        if (rows.length < sequences) {
            rows = java.util.Arrays.copyOf(rows, sequences);
            GROUP_SCORES.set(rows);
        }
        for (int s = 0; s < sequences; s++) {
            int need = group * ns[s];
            if (rows[s] == null || rows[s].length < need) {
                rows[s] = new float[Math.max(need, Math.min(2 * (rows[s] == null ? 0 : rows[s].length), 1 << 24))];
            }
        }
        return rows;
    }

    private static final ThreadLocal<float[][]> GROUP_SCORES = ThreadLocal.withInitial(() -> new float[0][]);

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
