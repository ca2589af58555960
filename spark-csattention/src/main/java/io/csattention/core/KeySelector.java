package io.csattention.core;

/**
 * A sparse attention method's choice of keys for one query against one KV cache. Implementations are thread-safe
 * for concurrent {@link #select} calls; {@link #keysAppended} is called by the single writer that grows the cache.
 */
public interface KeySelector {

    /**
     * The keys {@code query[queryOff .. queryOff+dim)} attends under {@code plan}: ascending key indices, exactly
     * {@code plan.budget()} of them, or fewer only where the method legitimately attends fewer.
     */
    int[] select(float[] query, int queryOff, BudgetPlan plan);

    /**
     * The same for a query at a known {@code position} (its RoPE position); methods that do not use positions ignore
     * it.
     */
    default int[] select(float[] query, int queryOff, BudgetPlan plan, long position) {
        return select(query, queryOff, plan);
    }

    /**
     * The selections of the queries in rows [first, first + count) of {@code queries} (row-major, {@code dim} wide),
     * for a block decoded by one thread; the same as {@link #select} row by row, which is what the default does. A
     * method may share work across the block. {@code positions} holds each row's RoPE position, indexed by row like
     * {@code queries} ({@code positions[first + i]}), or is null for queries at the method's default position.
     */
    default int[][] selectBlock(float[] queries, int first, int count, int dim, BudgetPlan plan, long[] positions) {
        int[][] selections = new int[count][];
        for (int i = 0; i < count; i++) {
            int off = (first + i) * dim;
            selections[i] = positions == null ? select(queries, off, plan)
                    : select(queries, off, plan, positions[first + i]);
        }
        return selections;
    }

    /** The cache grew; the selector indexes the new keys (streaming insertion). */
    default void keysAppended() {
    }

    /** Bytes held by the method's own index (not counting the KV cache). */
    default long indexBytes() {
        return 0;
    }
}
