package io.csattention.core;

import io.csattention.kernel.VectorKernels;

/**
 * Decode with an {@link CSAttentionIndex}: per subspace the chosen centroid's list is gathered and its partial scores
 * summed per key (absent keys contribute the list's missing-score estimate); the best {@code rescoreFactor * chosen}
 * keys by that sum are re-scored exactly with {@code q . k}, and the best {@code chosen} of them are attended with
 * the sink and window keys. With {@code rescoreFactor == 0} the accumulated scores decide directly (the literal
 * method).
 */
public final class CSAttentionSelector implements KeySelector {

    private final VectorKernels kernels;
    private final CSAttentionIndex index;
    private final KeyValueCache cache;
    private final double rescoreFactor;
    private final ThreadLocal<Scratch> scratch = ThreadLocal.withInitial(Scratch::new);
    private int appended;

    public CSAttentionSelector(VectorKernels kernels, CSAttentionIndex index, KeyValueCache cache,
                               double rescoreFactor) {
        Check.that(index.dim() == cache.dim(), "index and cache must have the same dim " + cache.dim(), "index.dim",
                index.dim());
        this.kernels = kernels;
        this.index = index;
        this.cache = cache;
        this.rescoreFactor = rescoreFactor;
    }

    public CSAttentionIndex index() {
        return index;
    }

    @Override
    public int[] select(float[] query, int queryOff, BudgetPlan plan) {
        return select(query, queryOff, plan, index.defaultQueryPosition());
    }

    @Override
    public int[] select(float[] query, int queryOff, BudgetPlan plan, long position) {
        Scratch s = scratch.get();
        int n = plan.keys();
        s.ensure(n);
        int from = plan.middleStart();
        int to = plan.middleEnd();
        int chosen = plan.chosen();
        int touchedCount = accumulate(index.lookupQuery(query, queryOff, position), from, to, s);

        int candidates = rescoreFactor > 0
                ? (int) Math.min(to - from, Math.ceil(rescoreFactor * chosen))
                : chosen;
        int[] picked;
        if (touchedCount >= candidates) {
            // the scratch is rebuilt by the next query, so it can be partitioned in place
            TopK.partition(s.touchedScores, s.touched, touchedCount, candidates);
            picked = java.util.Arrays.copyOf(s.touched, candidates);
        } else {
            picked = fillWithUntouched(s, touchedCount, candidates, from, to);
        }
        if (rescoreFactor > 0 && picked.length > chosen) {
            java.util.Arrays.sort(picked); // ascending rows: the gathered key reads walk memory forwards
            float[] exact = new float[picked.length];
            kernels.dotSelectedRows(query, queryOff, cache.keys(), cache.dim(), picked, picked.length, exact);
            picked = TopK.largest(exact, picked, picked.length, chosen);
        }
        return Selections.assemble(plan, picked);
    }

    /** Sums the chosen lists into the scratch, for keys in [from, to); returns how many keys were touched. */
    private int accumulate(float[] lookup, int from, int to, Scratch s) {
        int stamp = ++s.stamp;
        int touchedCount = 0;
        int listLength = index.listLength();
        int[] ids = index.listIds();
        float[] scores = index.listScores();
        float[] missing = index.missing();
        CSAttentionIndex.Overflow overflow = index.overflow();
        for (int j = 0; j < index.subspaces(); j++) {
            int list = j * index.centroidCount() + index.nearestCentroid(kernels, lookup, 0, j);
            float estimate = missing[list];
            int base = list * listLength;
            for (int r = 0; r < listLength + overflow.count(list); r++) {
                int id;
                float score;
                if (r < listLength) {
                    id = ids[base + r];
                    score = scores[base + r];
                } else {
                    id = overflow.ids(list)[r - listLength];
                    score = overflow.scores(list)[r - listLength];
                }
                if (id < from || id >= to) {
                    continue;
                }
                if (s.stamps[id] != stamp) {
                    s.stamps[id] = stamp;
                    s.slot[id] = touchedCount;
                    s.touched[touchedCount] = id;
                    s.touchedScores[touchedCount++] = 0f;
                }
                s.touchedScores[s.slot[id]] += score - estimate;
            }
        }
        return touchedCount;
    }

    /** Too few keys were touched: all of them, then untouched keys of [from, to) in ascending order. */
    private static int[] fillWithUntouched(Scratch s, int touchedCount, int wanted, int from, int to) {
        int[] picked = new int[wanted];
        System.arraycopy(s.touched, 0, picked, 0, touchedCount);
        int count = touchedCount;
        for (int id = from; id < to && count < wanted; id++) {
            if (s.stamps[id] != s.stamp) {
                picked[count++] = id;
            }
        }
        return picked;
    }

    @Override
    public void keysAppended() {
        for (int id = index.keys() + appended; id < cache.size(); id++) {
            index.insert(kernels, cache.keys(), id);
            appended++;
        }
    }

    @Override
    public long indexBytes() {
        return index.bytes();
    }

    /** Per-thread buffers sized to the cache, reused across queries. */
    private static final class Scratch {
        int[] stamps = new int[0];
        int[] slot = new int[0];
        int[] touched = new int[0];
        float[] touchedScores = new float[0];
        int stamp;

        void ensure(int n) {
            if (stamps.length < n) {
                stamps = new int[n];
                slot = new int[n];
                touched = new int[n];
                touchedScores = new float[n];
                stamp = 0;
            }
        }
    }
}
