package io.csattention.core;

import io.csattention.kernel.VectorKernels;

/**
 * Decode with an {@link CSAttentionIndex}: per subspace the chosen centroid's list is gathered and its partial scores
 * summed per key (absent keys contribute the list's missing-score estimate); the best {@code rescoreFactor * chosen}
 * keys by that sum are re-scored with {@code q . k} over the int8 {@link KeySketch} of the keys, and the best
 * {@code chosen} of them are attended exactly with the sink and window keys. With {@code rescoreFactor == 0} the
 * summed list scores decide directly (the literal method).
 *
 * <p>How it is fast on a CPU (see the README's benchmark section for the measurements):
 * <ul>
 *   <li>lists are read in their packed decode form ({@link PackedLists}: 3 bytes per entry, ascending keys per
 *       block), and summed as integers into a dense per-thread accumulator that also counts the lists a key was
 *       met in, so "touched" needs no second array;</li>
 *   <li>the re-scoring candidates are cut from the integer sums with a histogram, in time linear in the keys
 *       touched, and put in ascending order with a bitmap instead of a sort;</li>
 *   <li>re-scoring reads int8 rows (d + 4 bytes) instead of float rows (4d bytes): it reads a fifth of the rows at
 *       random, which is bound by memory, not arithmetic.</li>
 * </ul>
 * Ties at a cut are taken in the order the keys were first met, which depends only on the query.
 */
public final class CSAttentionSelector implements KeySelector {

    /** Bits of the accumulator that count the lists a key was met in; the units' sum sits above them. */
    private static final int COUNT_BITS = 8;

    private final VectorKernels kernels;
    private final CSAttentionIndex index;
    private final KeyValueCache cache;
    private final double rescoreFactor;
    private final PackedLists packed;
    private final KeySketch sketch;
    private final ThreadLocal<Scratch> scratch = ThreadLocal.withInitial(Scratch::new);
    private int appended;

    public CSAttentionSelector(VectorKernels kernels, CSAttentionIndex index, KeyValueCache cache,
                               double rescoreFactor) {
        Check.that(index.dim() == cache.dim(), "index and cache must have the same dim " + cache.dim(), "index.dim",
                index.dim());
        Check.that(index.subspaces() < (1 << COUNT_BITS), "subspaces must be < " + (1 << COUNT_BITS),
                "index.subspaces", index.subspaces());
        this.kernels = kernels;
        this.index = index;
        this.cache = cache;
        this.rescoreFactor = rescoreFactor;
        this.packed = PackedLists.of(index);
        this.sketch = rescoreFactor > 0 ? KeySketch.of(cache) : null;
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
        int m = index.subspaces();
        s.ensure(n, 2 * PackedLists.UNIT_MAX * m + 1);
        int from = plan.middleStart();
        int to = plan.middleEnd();
        int chosen = plan.chosen();
        int touched = accumulate(index.lookupQuery(query, queryOff, position), from, to, s);

        int candidates = rescoreFactor > 0
                ? (int) Math.min(to - from, Math.ceil(rescoreFactor * chosen))
                : chosen;
        int count = touched >= candidates
                ? cutBySums(s, touched, candidates, PackedLists.UNIT_MAX * m)
                : withUntouched(s, touched, candidates, from, to);
        if (rescoreFactor > 0 && count > chosen) {
            Selections.ascending(s.picked, count, s.bits, from, to); // the coded rows are then read forwards
            kernels.dotSelectedCodes(query, queryOff, sketch.codes(), sketch.dim(), sketch.scales(), s.picked, count,
                    s.scores);
            TopK.partition(s.scores, s.picked, count, chosen);
            count = chosen;
        }
        return assemble(plan, s, count);
    }

    /**
     * Adds the chosen lists of keys in [from, to) into the accumulator, recording each key the first time it is met;
     * returns how many keys were met.
     */
    private int accumulate(float[] lookup, int from, int to, Scratch s) {
        int[] acc = s.acc;
        int[] touched = s.touched;
        int count = 0;
        char[] offsets = packed.offsets();
        byte[] units = packed.units();
        CSAttentionIndex.Overflow overflow = index.overflow();
        for (int j = 0; j < index.subspaces(); j++) {
            int list = j * index.centroidCount() + index.nearestCentroid(kernels, lookup, 0, j);
            for (int b = 0; b < packed.blocks(); b++) {
                int base = b << PackedLists.BLOCK_BITS;
                for (int e = packed.start(list, b), end = packed.start(list, b + 1); e < end; e++) {
                    int id = base + offsets[e];
                    if (id >= from && id < to) {
                        int a = acc[id];
                        if (a == 0) {
                            touched[count++] = id;
                        }
                        acc[id] = a + (units[e] << COUNT_BITS) + 1;
                    }
                }
            }
            float estimate = index.missing()[list];
            for (int r = 0; r < overflow.count(list); r++) {
                int id = overflow.ids(list)[r];
                if (id >= from && id < to) {
                    int a = acc[id];
                    if (a == 0) {
                        touched[count++] = id;
                    }
                    acc[id] = a + (PackedLists.toUnits(overflow.scores(list)[r] - estimate, packed.unit())
                            << COUNT_BITS) + 1;
                }
            }
        }
        return count;
    }

    /**
     * Marks the {@code wanted} touched keys with the largest sums in the bitmap (a histogram finds the cut) and
     * clears the accumulator; returns {@code wanted}, the picks being written by {@link #assemble}'s bitmap walk.
     */
    private int cutBySums(Scratch s, int touched, int wanted, int offset) {
        int[] histogram = s.histogram;
        java.util.Arrays.fill(histogram, 0);
        for (int i = 0; i < touched; i++) {
            histogram[(s.acc[s.touched[i]] >> COUNT_BITS) + offset]++;
        }
        int cut = histogram.length - 1;
        int above = 0;
        while (above + histogram[cut] < wanted) {
            above += histogram[cut--];
        }
        int ties = wanted - above;
        int count = 0;
        for (int i = 0; i < touched; i++) {
            int id = s.touched[i];
            int sum = (s.acc[id] >> COUNT_BITS) + offset;
            if (sum > cut || (sum == cut && ties-- > 0)) {
                s.picked[count++] = id;
            }
            s.acc[id] = 0;
        }
        return count;
    }

    /** Too few keys were touched: all of them, then untouched keys of [from, to) in ascending order. */
    private static int withUntouched(Scratch s, int touched, int wanted, int from, int to) {
        System.arraycopy(s.touched, 0, s.picked, 0, touched);
        int count = touched;
        for (int id = from; id < to && count < wanted; id++) {
            if (s.acc[id] == 0) {
                s.picked[count++] = id;
            }
        }
        for (int i = 0; i < touched; i++) {
            s.acc[s.touched[i]] = 0;
        }
        return count;
    }

    /** Sinks, the {@code count} picks in ascending order, the window; -1 padded. */
    private static int[] assemble(BudgetPlan plan, Scratch s, int count) {
        int[] out = new int[plan.budget()];
        int at = 0;
        for (int i = 0; i < plan.sink(); i++) {
            out[at++] = i;
        }
        int picks = Math.min(count, plan.chosen());
        Selections.ascending(s.picked, picks, s.bits, plan.middleStart(), plan.middleEnd());
        System.arraycopy(s.picked, 0, out, at, picks);
        at += picks;
        for (int i = plan.middleEnd(); i < plan.keys(); i++) {
            out[at++] = i;
        }
        java.util.Arrays.fill(out, at, out.length, -1);
        return out;
    }

    @Override
    public void keysAppended() {
        for (int id = index.keys() + appended; id < cache.size(); id++) {
            index.insert(kernels, cache.keys(), id);
            appended++;
        }
        if (sketch != null) {
            sketch.appendUpTo(cache);
        }
    }

    /** The decode form: packed lists, the key sketch, centroids, estimates and streamed entries. */
    @Override
    public long indexBytes() {
        return packed.bytes() + (sketch == null ? 0 : sketch.bytes()) + index.tableBytes();
    }

    /** Per-thread buffers sized to the cache, reused across queries; the accumulator and bitmap are left zeroed. */
    private static final class Scratch {
        int[] acc = new int[0];
        int[] touched = new int[0];
        int[] picked = new int[0];
        float[] scores = new float[0];
        long[] bits = new long[0];
        int[] histogram = new int[0];

        void ensure(int n, int histogramSize) {
            if (acc.length < n) {
                acc = new int[n];
                touched = new int[n];
                picked = new int[n];
                scores = new float[n];
                bits = new long[(n + 63) >>> 6];
            }
            if (histogram.length != histogramSize) {
                histogram = new int[histogramSize];
            }
        }
    }
}
