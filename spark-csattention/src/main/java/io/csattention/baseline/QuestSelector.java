package io.csattention.baseline;

import io.csattention.core.BudgetPlan;
import io.csattention.core.KeySelector;
import io.csattention.core.KeyValueCache;
import io.csattention.core.Selections;
import io.csattention.core.TopK;
import io.csattention.kernel.VectorKernels;

/**
 * Quest: keys in pages of P; each page keeps its per-dimension minimum and maximum, and scores the upper bound
 * {@code sum_d max(q_d * min_d, q_d * max_d)}. Pages are taken best first until the budget is spent; the last page
 * taken may contribute only its first keys so that the budget is met exactly.
 */
public final class QuestSelector implements KeySelector {

    public static final int DEFAULT_PAGE_SIZE = 16;

    private final VectorKernels kernels;
    private final KeyValueCache cache;
    private final int pageSize;
    private float[] minimum = new float[0];
    private float[] maximum = new float[0];
    private int indexedKeys;

    public QuestSelector(VectorKernels kernels, KeyValueCache cache, int pageSize) {
        this.kernels = kernels;
        this.cache = cache;
        this.pageSize = pageSize;
        keysAppended();
    }

    @Override
    public synchronized void keysAppended() {
        int d = cache.dim();
        int pages = (cache.size() + pageSize - 1) / pageSize;
        int capacity = minimum.length / d;
        if (capacity < pages) {
            capacity = Math.max(pages, 2 * capacity);
            minimum = java.util.Arrays.copyOf(minimum, capacity * d);
            maximum = java.util.Arrays.copyOf(maximum, capacity * d);
        }
        float[] row = new float[d];
        for (int key = indexedKeys; key < cache.size(); key++) {
            int page = key / pageSize;
            cache.keyRows(kernels, key, 1, row, 0);
            for (int c = 0; c < d; c++) {
                float v = row[c];
                if (key % pageSize == 0) {
                    minimum[page * d + c] = v;
                    maximum[page * d + c] = v;
                } else {
                    minimum[page * d + c] = Math.min(minimum[page * d + c], v);
                    maximum[page * d + c] = Math.max(maximum[page * d + c], v);
                }
            }
        }
        indexedKeys = cache.size();
    }

    @Override
    public int[] select(float[] query, int queryOff, BudgetPlan plan) {
        int d = cache.dim();
        int from = plan.middleStart();
        int to = plan.middleEnd();
        int firstPage = from / pageSize;
        int lastPage = (to - 1) / pageSize;
        int pages = Math.max(0, lastPage - firstPage + 1);
        float[] bounds = new float[pages];
        int[] ids = new int[pages];
        kernels.boundRows(query, queryOff, minimum, maximum, d, firstPage, pages, bounds, 0);
        for (int p = 0; p < pages; p++) {
            ids[p] = firstPage + p;
        }
        int[] order = rankPages(bounds, ids, pages, plan.chosen());
        int[] chosen = new int[plan.chosen()];
        int count = 0;
        for (int page : order) {
            for (int key = Math.max(from, page * pageSize); key < Math.min(to, (page + 1) * pageSize); key++) {
                if (count == chosen.length) {
                    break;
                }
                chosen[count++] = key;
            }
        }
        return Selections.assemble(plan, java.util.Arrays.copyOf(chosen, count));
    }

    /** Enough of the best pages, best first (ties: the lower page first), to cover {@code keysWanted} keys. */
    private int[] rankPages(float[] bounds, int[] ids, int pages, int keysWanted) {
        int needed = Math.min(pages, keysWanted / pageSize + 2);
        int[] best = TopK.largest(bounds, ids, pages, needed);
        TopK.sortBestFirst(best, best.length, bounds, pages == 0 ? 0 : ids[0]);
        return best;
    }

    @Override
    public long indexBytes() {
        return 8L * ((cache.size() + pageSize - 1) / pageSize) * cache.dim();
    }
}
