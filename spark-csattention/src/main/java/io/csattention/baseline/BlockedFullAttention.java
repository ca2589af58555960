package io.csattention.baseline;

import io.csattention.core.FloatMatrix;
import io.csattention.core.KeyValueCache;
import io.csattention.kernel.VectorKernels;

import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.RecursiveAction;

/**
 * Exact attention over every key for a block of queries, as fast as we know how to make it on a CPU, so that the
 * sparse methods are compared with an honest {@code full}: queries are processed in blocks of {@code queryBlock}
 * rows; each block streams the cache once in tiles of {@code keyBlock} keys, computing the Q*K^T tile with
 * {@link VectorKernels#dotBlock}, an online softmax (running max and sum, rescaling the partial outputs when the max
 * grows, as in FlashAttention) and the P*V tile with {@link VectorKernels#addWeightedRows}. A block reads K and V
 * once for all its queries instead of once per query. Blocks are spread over a {@link ForkJoinPool} of
 * {@code threads} workers; with one thread everything runs on the caller's thread.
 *
 * <p>The output equals {@code Attention.attend} over all keys up to float reassociation. It is not built on it: the
 * online softmax over key tiles is what lets a block read K and V once, and it rounds differently (most output floats
 * differ in their last bits), so {@code full}'s outputs would change.
 */
public final class BlockedFullAttention implements AutoCloseable {

    public static final int DEFAULT_QUERY_BLOCK = 16;
    /** Keys per tile: 256 rows of d = 128 are 128 KiB of K and as much of V, which stay in L2 across the block. */
    public static final int DEFAULT_KEY_BLOCK = 256;

    private final VectorKernels kernels;
    private final int queryBlock;
    private final int keyBlock;
    private final ForkJoinPool pool;

    public BlockedFullAttention(VectorKernels kernels, int threads, int queryBlock, int keyBlock) {
        if (threads < 1 || queryBlock < 1 || keyBlock < 1) {
            throw new IllegalArgumentException("threads, query-block and key-block must be > 0; threads=" + threads
                    + ", query-block=" + queryBlock + ", key-block=" + keyBlock);
        }
        this.kernels = java.util.Objects.requireNonNull(kernels, "kernels");
        this.queryBlock = queryBlock;
        this.keyBlock = keyBlock;
        this.pool = threads > 1 ? new ForkJoinPool(threads) : null;
    }

    public BlockedFullAttention(VectorKernels kernels, int threads) {
        this(kernels, threads, DEFAULT_QUERY_BLOCK, DEFAULT_KEY_BLOCK);
    }

    /** {@code softmax(Q K^T / sqrt(d)) V} for every row of {@code queries} [M, d] over all keys of {@code cache}. */
    public FloatMatrix attend(KeyValueCache cache, FloatMatrix queries) {
        if (queries.cols() != cache.dim()) {
            throw new IllegalArgumentException("queries must have the cache's dim " + cache.dim() + "; queries.cols="
                    + queries.cols());
        }
        int m = queries.rows();
        float[] out = new float[m * cache.dim()];
        int blocks = (m + queryBlock - 1) / queryBlock;
        if (pool == null || blocks <= 1) {
            for (int b = 0; b < blocks; b++) {
                attendBlock(cache, queries, b, out);
            }
        } else {
            pool.invoke(new Blocks(cache, queries, 0, blocks, out));
        }
        return new FloatMatrix(m, cache.dim(), out);
    }

    private void attendBlock(KeyValueCache cache, FloatMatrix queries, int block, float[] result) {
        int d = cache.dim();
        int n = cache.size();
        int first = block * queryBlock;
        int count = Math.min(queryBlock, queries.rows() - first);
        float scale = (float) (1.0 / Math.sqrt(d));
        float[] q = new float[count * d];
        for (int i = 0; i < q.length; i++) {
            q[i] = queries.data()[first * d + i] * scale;
        }
        float[] out = new float[count * d];
        float[] runningMax = new float[count];
        float[] runningSum = new float[count];
        java.util.Arrays.fill(runningMax, Float.NEGATIVE_INFINITY);
        float[] tile = new float[count * keyBlock];
        // a half-precision cache widens each key block once for the whole query block
        boolean half = cache.precision() != KeyValueCache.Precision.F32;
        float[] keys = half ? new float[keyBlock * d] : cache.keys();
        float[] values = half ? new float[keyBlock * d] : cache.values();
        for (int start = 0; start < n; start += keyBlock) {
            int rows = Math.min(keyBlock, n - start);
            int base = start;
            if (half) {
                cache.keyRows(kernels, start, rows, keys, 0);
                cache.valueRows(kernels, start, rows, values, 0);
                base = 0;
            }
            kernels.dotBlock(q, 0, d, count, keys, d, d, base, rows, tile, 0, keyBlock);
            for (int i = 0; i < count; i++) {
                float max = Math.max(runningMax[i], kernels.max(tile, i * keyBlock, rows));
                if (max > runningMax[i] && runningSum[i] > 0) {
                    float factor = (float) Math.exp(runningMax[i] - max);
                    runningSum[i] *= factor;
                    for (int c = i * d; c < (i + 1) * d; c++) {
                        out[c] *= factor;
                    }
                }
                runningMax[i] = max;
                runningSum[i] += kernels.expShifted(tile, i * keyBlock, rows, max);
            }
            kernels.addWeightedRows(tile, 0, keyBlock, count, values, d, d, base, rows, out, 0, d);
        }
        for (int i = 0; i < count; i++) {
            float inv = runningSum[i] > 0 ? 1f / runningSum[i] : 0f;
            for (int c = 0; c < d; c++) {
                result[(first + i) * d + c] = out[i * d + c] * inv;
            }
        }
    }

    /** Splits [firstBlock, lastBlock) in halves down to single query blocks. */
    private final class Blocks extends RecursiveAction {
        private final KeyValueCache cache;
        private final FloatMatrix queries;
        private final int firstBlock;
        private final int lastBlock;
        private final float[] out;

        Blocks(KeyValueCache cache, FloatMatrix queries, int firstBlock, int lastBlock, float[] out) {
            this.cache = cache;
            this.queries = queries;
            this.firstBlock = firstBlock;
            this.lastBlock = lastBlock;
            this.out = out;
        }

        @Override
        protected void compute() {
            if (lastBlock - firstBlock == 1) {
                attendBlock(cache, queries, firstBlock, out);
                return;
            }
            int mid = (firstBlock + lastBlock) >>> 1;
            invokeAll(new Blocks(cache, queries, firstBlock, mid, out),
                    new Blocks(cache, queries, mid, lastBlock, out));
        }
    }

    @Override
    public void close() {
        if (pool != null) {
            pool.shutdown();
        }
    }
}
