package io.csattention.core;

import io.csattention.kernel.VectorKernels;

import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.RecursiveAction;

/**
 * Decodes a block of queries [M, d] against one cache and one selector: each block of queries selects its keys
 * together ({@link KeySelector#selectBlock}) and each query attends its keys exactly ({@link Attention#attend}).
 *
 * <p>Queries are cut into blocks of {@code queryBlock} consecutive queries; one thread decodes a whole block, so the
 * lists and the K/V rows that neighbouring queries of the same context share stay in that core's caches. Blocks are
 * spread over a {@link ForkJoinPool} of {@code threads} workers; with one thread everything runs on the caller's
 * thread (a true single-threaded measurement). Thread-safe: selectors are safe for concurrent {@code select} calls.
 */
public final class BlockDecoder implements AutoCloseable {

    /** Queries per block when not given: enough to reuse cached rows, small enough to balance two to 64 threads. */
    public static final int DEFAULT_QUERY_BLOCK = 8;

    private final VectorKernels kernels;
    private final int threads;
    private final int queryBlock;
    private final ForkJoinPool pool;

    /** The outputs [M, d] and, per query, the selected key ids (ascending, -1 padded) of one decode. */
    public record Result(FloatMatrix outputs, int[][] selections) {
    }

    public BlockDecoder(VectorKernels kernels, int threads, int queryBlock) {
        this.kernels = java.util.Objects.requireNonNull(kernels, "kernels");
        this.threads = Check.positive(threads, "threads");
        this.queryBlock = Check.positive(queryBlock, "query-block");
        this.pool = threads > 1 ? new ForkJoinPool(threads) : null;
    }

    /** A decoder over {@code threads} workers with the default block size. */
    public static BlockDecoder withThreads(VectorKernels kernels, int threads) {
        return new BlockDecoder(kernels, threads, DEFAULT_QUERY_BLOCK);
    }

    public int threads() {
        return threads;
    }

    /** Decodes every row of {@code queries} under {@code plan}, each at the selector's default position. */
    public Result decode(KeyValueCache cache, KeySelector selector, BudgetPlan plan, FloatMatrix queries) {
        return decode(cache, selector, plan, queries, null);
    }

    /**
     * Decodes every row of {@code queries} under {@code plan}; row i at RoPE position {@code positions[i]}, or every
     * row at the selector's default position when {@code positions} is null.
     */
    public Result decode(KeyValueCache cache, KeySelector selector, BudgetPlan plan, FloatMatrix queries,
                         long[] positions) {
        Check.that(queries.cols() == cache.dim(), "queries must have the cache's dim " + cache.dim(), "queries.cols",
                queries.cols());
        Check.that(plan.keys() == cache.size(), "plan must cover the cache's " + cache.size() + " keys", "plan.keys",
                plan.keys());
        int m = queries.rows();
        Check.that(positions == null || positions.length == m, "positions must have one entry per query " + m,
                "positions.length", positions == null ? 0 : positions.length);
        int d = cache.dim();
        float[] out = new float[m * d];
        int[][] selections = new int[m][];
        int blocks = (m + queryBlock - 1) / queryBlock;
        if (pool == null || blocks <= 1) {
            for (int b = 0; b < blocks; b++) {
                int from = b * queryBlock;
                decodeRange(cache, selector, plan, queries, positions, from, Math.min(m, from + queryBlock), out,
                        selections);
            }
        } else {
            pool.invoke(new Blocks(cache, selector, plan, queries, positions, 0, blocks, out, selections));
        }
        return new Result(new FloatMatrix(m, d, out), selections);
    }

    private void decodeRange(KeyValueCache cache, KeySelector selector, BudgetPlan plan, FloatMatrix queries,
                             long[] positions, int from, int to, float[] out, int[][] selections) {
        int[][] selected = decodeBlock(kernels, cache, selector, plan, queries.data(), from, to - from, positions,
                out);
        System.arraycopy(selected, 0, selections, from, to - from);
    }

    /**
     * The decode step itself, on the caller's thread; every decode in the project (this class, the decode backends,
     * the Spark decode stage and SQL function, the model's sessions, the evaluations) goes through it. The queries in
     * rows [first, first + count) of {@code queries} ({@code cache.dim()} wide) select their keys together
     * ({@link KeySelector#selectBlock}, at {@code positions[row]} or the selector's default position when
     * {@code positions} is null) and attend them exactly ({@link Attention#attend}); row r's output goes to row r of
     * {@code out}. Returns the selections of the block's rows (ascending key ids, -1 padded).
     */
    public static int[][] decodeBlock(VectorKernels kernels, KeyValueCache cache, KeySelector selector,
                                      BudgetPlan plan, float[] queries, int first, int count, long[] positions,
                                      float[] out) {
        int d = cache.dim();
        int[][] selected = selector.selectBlock(queries, first, count, d, plan, positions);
        for (int i = 0; i < count; i++) {
            int row = first + i;
            Attention.attend(kernels, queries, row * d, cache, selected[i], out, row * d);
        }
        return selected;
    }

    /**
     * The decode step of a KV head's group with one shared selection (method {@code csattention_group}): the
     * {@code count} query heads in rows [first, first + count) select their keys together
     * ({@link CSAttentionSelector#selectShared}) and attend them in one pass ({@link Attention#attendShared}).
     * Returns the shared selection (ascending key ids, -1 padded).
     */
    public static int[] decodeShared(VectorKernels kernels, KeyValueCache cache, CSAttentionSelector selector,
                                     BudgetPlan plan, float[] queries, int first, int count, long[] positions,
                                     float[] out) {
        int d = cache.dim();
        int[] selected = selector.selectShared(queries, first, count, d, plan, positions);
        Attention.attendShared(kernels, queries, first * d, count, cache, selected, out, first * d);
        return selected;
    }

    /** Splits [firstBlock, lastBlock) in halves down to single query blocks. */
    private final class Blocks extends RecursiveAction {
        private final KeyValueCache cache;
        private final KeySelector selector;
        private final BudgetPlan plan;
        private final FloatMatrix queries;
        private final long[] positions;
        private final int firstBlock;
        private final int lastBlock;
        private final float[] out;
        private final int[][] selections;

        Blocks(KeyValueCache cache, KeySelector selector, BudgetPlan plan, FloatMatrix queries, long[] positions,
               int firstBlock, int lastBlock, float[] out, int[][] selections) {
            this.cache = cache;
            this.selector = selector;
            this.plan = plan;
            this.queries = queries;
            this.positions = positions;
            this.firstBlock = firstBlock;
            this.lastBlock = lastBlock;
            this.out = out;
            this.selections = selections;
        }

        @Override
        protected void compute() {
            if (lastBlock - firstBlock == 1) {
                int from = firstBlock * queryBlock;
                decodeRange(cache, selector, plan, queries, positions, from,
                        Math.min(queries.rows(), from + queryBlock), out, selections);
                return;
            }
            int mid = (firstBlock + lastBlock) >>> 1;
            invokeAll(new Blocks(cache, selector, plan, queries, positions, firstBlock, mid, out, selections),
                    new Blocks(cache, selector, plan, queries, positions, mid, lastBlock, out, selections));
        }
    }

    @Override
    public void close() {
        if (pool != null) {
            pool.shutdown();
        }
    }
}
