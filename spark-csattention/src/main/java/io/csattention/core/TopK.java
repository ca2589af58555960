package io.csattention.core;

/**
 * Selection of the k best (score, id) pairs in expected linear time (quickselect with a median-of-three pivot).
 * "Best" is the larger score; equal scores are broken by the lower id, so every backend selects the same set.
 */
public final class TopK {

    private TopK() {
    }

    /** The ids of the k best entries among {@code scores[i], ids[i]} for i in [0, count); order unspecified. */
    public static int[] largest(float[] scores, int[] ids, int count, int k) {
        if (k >= count) {
            return java.util.Arrays.copyOf(ids, count);
        }
        float[] s = java.util.Arrays.copyOf(scores, count);
        int[] id = java.util.Arrays.copyOf(ids, count);
        partition(s, id, count, k);
        return java.util.Arrays.copyOf(id, k);
    }

    /** The best k of the dense range {@code scores[from .. to)}, ids being the positions; order unspecified. */
    public static int[] largestInRange(float[] scores, int from, int to, int k) {
        int count = to - from;
        float[] s = new float[count];
        int[] id = new int[count];
        for (int i = 0; i < count; i++) {
            s[i] = scores[from + i];
            id[i] = from + i;
        }
        if (k >= count) {
            return id;
        }
        partition(s, id, count, k);
        return java.util.Arrays.copyOf(id, k);
    }

    /**
     * Reorders the first {@code count} entries of the parallel arrays in place so that the best k come first
     * (in unspecified order).
     */
    public static void partition(float[] scores, int[] ids, int count, int k) {
        if (k <= 0 || k >= count) {
            return;
        }
        int lo = 0;
        int hi = count - 1;
        while (lo < hi) {
            int mid = (lo + hi) >>> 1;
            // median of three, moved to hi
            if (better(scores, ids, mid, lo)) {
                swap(scores, ids, mid, lo);
            }
            if (better(scores, ids, hi, lo)) {
                swap(scores, ids, hi, lo);
            }
            if (better(scores, ids, mid, hi)) {
                swap(scores, ids, mid, hi);
            }
            float pivotScore = scores[hi];
            int pivotId = ids[hi];
            int store = lo;
            for (int i = lo; i < hi; i++) {
                if (scores[i] > pivotScore || (scores[i] == pivotScore && ids[i] < pivotId)) {
                    swap(scores, ids, i, store++);
                }
            }
            swap(scores, ids, store, hi);
            if (store == k - 1 || store == k) {
                return;
            }
            if (store < k) {
                lo = store + 1;
            } else {
                hi = store - 1;
            }
        }
    }

    private static boolean better(float[] scores, int[] ids, int a, int b) {
        return scores[a] > scores[b] || (scores[a] == scores[b] && ids[a] < ids[b]);
    }

    private static void swap(float[] scores, int[] ids, int a, int b) {
        float s = scores[a];
        scores[a] = scores[b];
        scores[b] = s;
        int t = ids[a];
        ids[a] = ids[b];
        ids[b] = t;
    }

    /** Buckets of {@link #keepLargest}'s histogram: the top 12 bits of the scores' order. */
    public static final int RADIX_BUCKETS = 1 << 12;
    private static final int BUCKET_SHIFT = Integer.SIZE - 12;

    /**
     * Keeps, in place and in their order, the k entries of {@code scores/ids[0 .. count)} with the largest scores,
     * ties going to the earlier entry (the lower id when ids ascend, as {@link #partition} breaks them); returns how
     * many were kept ({@code min(k, count)}). A histogram of the scores by the top bits of their order (sign,
     * exponent and three mantissa bits: eight buckets per power of two, so the skewed softmax weights of a selection
     * spread over many buckets, where even buckets between the minimum and maximum put nearly all of them in the
     * lowest) finds the bucket of the k-th score, only that bucket is ranked exactly, and one forward pass compacts:
     * linear time, no swaps, and the survivors keep their order (ascending ids stay ascending). {@code histogram} is
     * scratch of {@link #RADIX_BUCKETS} ints. NaN scores rank as their bits order (a positive NaN above
     * everything).
     */
    public static int keepLargest(float[] scores, int[] ids, int count, int k, int[] histogram) {
        if (k >= count) {
            return count;
        }
        if (k <= 0) {
            return 0;
        }
        java.util.Arrays.fill(histogram, 0);
        for (int i = 0; i < count; i++) {
            histogram[bucket(order(scores[i]))]++;
        }
        int bucket = RADIX_BUCKETS - 1;
        int above = 0;
        while (above + histogram[bucket] < k) {
            above += histogram[bucket--];
        }
        // rank the k-th score's bucket exactly: its members' orders, largest last
        int[] members = new int[histogram[bucket]];
        int at = 0;
        for (int i = 0; i < count; i++) {
            if (bucket(order(scores[i])) == bucket) {
                members[at++] = order(scores[i]);
            }
        }
        // the (k - above)-th largest member is the threshold; the members above it are kept, and as many equal to
        // it as the budget has left
        int threshold = nthSmallest(members, members.length - (k - above));
        int greater = 0;
        for (int o : members) {
            greater += o > threshold ? 1 : 0;
        }
        int ties = k - above - greater;
        int kept = 0;
        for (int i = 0; i < count; i++) { // without branches on the data: a quarter kept at random mispredicts
            int o = order(scores[i]);
            boolean tie = o == threshold && ties > 0;
            ties -= tie ? 1 : 0;
            scores[kept] = scores[i];
            ids[kept] = ids[i];
            kept += o > threshold || tie ? 1 : 0;
        }
        return kept;
    }

    /**
     * The value of rank {@code n} (from 0) of {@code values} in ascending order, reordering them: quickselect with a
     * three-way partition around a median of three, so runs of equal values (scores flushed to 0) stay linear.
     */
    static int nthSmallest(int[] values, int n) {
        int lo = 0;
        int hi = values.length - 1;
        while (lo < hi) {
            int mid = (lo + hi) >>> 1;
            int a = values[lo];
            int b = values[mid];
            int c = values[hi];
            int pivot = Math.max(Math.min(a, b), Math.min(Math.max(a, b), c));
            // [lo, lt) < pivot, [lt, i) == pivot, (gt, hi] > pivot
            int lt = lo;
            int gt = hi;
            int i = lo;
            while (i <= gt) {
                int v = values[i];
                if (v < pivot) {
                    values[i++] = values[lt];
                    values[lt++] = v;
                } else if (v > pivot) {
                    values[i] = values[gt];
                    values[gt--] = v;
                } else {
                    i++;
                }
            }
            if (n < lt) {
                hi = lt - 1;
            } else if (n > gt) {
                lo = gt + 1;
            } else {
                return pivot;
            }
        }
        return values[n];
    }

    /**
     * Sorts {@code ids[0 .. count)} in place best first: by descending {@code scores[id - base]}, ties by ascending
     * id, on primitive keys (no boxing).
     */
    public static void sortBestFirst(int[] ids, int count, float[] scores, int base) {
        long[] keys = new long[count];
        for (int i = 0; i < count; i++) {
            keys[i] = ((long) ~order(scores[ids[i] - base]) << 32) | (ids[i] & 0xffffffffL);
        }
        java.util.Arrays.sort(keys);
        for (int i = 0; i < count; i++) {
            ids[i] = (int) keys[i];
        }
    }

    /** An int that orders like the float; both zeros are one value, as {@code ==} has them. */
    private static int order(float score) {
        int bits = Float.floatToRawIntBits(score + 0f); // -0f + 0f is +0f
        return bits ^ ((bits >> 31) & 0x7fffffff);
    }

    /** The bucket of an {@link #order}: its top bits as unsigned, non-decreasing in the order. */
    private static int bucket(int order) {
        return (order ^ Integer.MIN_VALUE) >>> BUCKET_SHIFT;
    }
}
