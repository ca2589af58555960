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
 *   <li>the re-scoring candidates are cut from the integer sums with a histogram: two forward passes over the
 *       accumulator, which leave them in ascending order (no sort), and the chosen keys are cut from the re-scored
 *       candidates with a radix histogram ({@link TopK#keepLargest}), which keeps that order;</li>
 *   <li>re-scoring reads int8 rows (d + 4 bytes) instead of float rows (4d bytes): it reads a fifth of the rows,
 *       which is bound by memory, not arithmetic;</li>
 *   <li>the queries of a block ({@link #selectBlock}) re-score their candidates in one forward sweep over the sketch,
 *       so a block reads it once instead of once per query.</li>
 * </ul>
 * Ties at either cut go to the lower key.
 */
public final class CSAttentionSelector implements KeySelector {

    /** Bits of the accumulator that count the lists a key was met in; the units' sum sits above them. */
    private static final int COUNT_BITS = 8;
    /** Keys per chunk of the re-scoring sweep: 4,096 coded rows of d = 128 are 512 KiB, which stay in L2. */
    private static final int RESCORE_CHUNK = 4096;

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
        this.packed = PackedLists.of(index);
        this.index = index.withoutLists(); // the float lists are not kept: they are collected with the caller's index
        this.cache = cache;
        this.rescoreFactor = rescoreFactor;
        this.sketch = rescoreFactor > 0 ? KeySketch.of(cache) : null;
    }

    private CSAttentionSelector(CSAttentionSelector parent, KeyValueCache cache) {
        this.kernels = parent.kernels;
        this.packed = parent.packed;
        this.index = parent.index.withoutLists();
        this.cache = cache;
        this.rescoreFactor = parent.rescoreFactor;
        this.sketch = parent.sketch == null ? null : parent.sketch.fork(cache);
    }

    /**
     * A selector over {@code cache}, a copy of this selector's cache made before any key was streamed in: it shares
     * the packed lists and tables (nothing is rebuilt) and streams its own new keys into an overflow of its own.
     */
    public CSAttentionSelector forkOnto(KeyValueCache cache) {
        Check.that(cache.size() == index.keys() && cache.dim() == index.dim(),
                "a fork's cache must hold exactly the indexed " + index.keys() + " keys", "cache.size", cache.size());
        return new CSAttentionSelector(this, cache);
    }

    /** The lists in their decode form (a GPU decoder uploads these rather than packing the dropped lists again). */
    public PackedLists packedLists() {
        return packed;
    }

    /** The int8 key sketch of the re-scoring, null when the selector re-scores nothing. */
    public KeySketch sketch() {
        return sketch;
    }

    /** The index's tables without its build-form lists ({@link CSAttentionIndex#withoutLists}). */
    public CSAttentionIndex index() {
        return index;
    }

    @Override
    public int[] select(float[] query, int queryOff, BudgetPlan plan) {
        return select(query, queryOff, plan, index.defaultQueryPosition());
    }

    @Override
    public int[] select(float[] query, int queryOff, BudgetPlan plan, long position) {
        return selectRows(query, new int[] {queryOff}, plan, new long[] {position})[0];
    }

    /**
     * The block's queries are chosen together: each sums its lists and cuts its candidates alone, then the
     * candidates of all of them are re-scored in one forward sweep over the key sketch, a chunk of keys at a time, so
     * each chunk of coded rows is read from memory once for the whole block instead of once per query. The result is
     * what {@link #select} gives query by query.
     */
    @Override
    public int[][] selectBlock(float[] queries, int first, int count, int dim, BudgetPlan plan, long[] positions) {
        int[] offsets = new int[count];
        long[] at = new long[count];
        for (int i = 0; i < count; i++) {
            offsets[i] = (first + i) * dim;
            at[i] = positions == null ? index.defaultQueryPosition() : positions[first + i];
        }
        return selectRows(queries, offsets, plan, at);
    }

    private int[][] selectRows(float[] queries, int[] offsets, BudgetPlan plan, long[] positions) {
        Scratch s = scratch.get();
        int m = index.subspaces();
        int from = plan.middleStart();
        int to = plan.middleEnd();
        int chosen = plan.chosen();
        int candidates = rescoreFactor > 0
                ? (int) Math.min(to - from, Math.ceil(rescoreFactor * chosen))
                : chosen;
        int block = offsets.length;
        s.ensure(plan.keys(), 2 * PackedLists.UNIT_MAX * m + 1, block, candidates);
        int[] counts = new int[block];
        for (int q = 0; q < block; q++) {
            accumulate(index.lookupQuery(queries, offsets[q], positions[q]), from, to, s.acc);
            counts[q] = cutBySums(s, from, to, candidates, PackedLists.UNIT_MAX * m, s.picked[q]);
        }
        boolean rescore = rescoreFactor > 0 && candidates > chosen;
        if (rescore) {
            rescoreInChunks(queries, offsets, counts, from, to, s);
        }
        int[][] selections = new int[block][];
        for (int q = 0; q < block; q++) {
            int kept = rescore ? TopK.keepLargest(s.scores[q], s.picked[q], counts[q], chosen, s.radix) : counts[q];
            selections[q] = Selections.assembleAscending(plan, s.picked[q], Math.min(kept, chosen));
        }
        return selections;
    }

    /** Candidates per chunk of the shared re-scoring: 1,024 coded rows of d = 64 are 68 KiB, in L2 for the group. */
    private static final int SHARED_CHUNK = 1024;

    /**
     * One selection for the {@code count} query heads of a KV head's group (grouped-query attention) in rows
     * [first, first + count) of {@code queries}, which all attend it ({@link Attention#attendShared}): the budget
     * is spent once per group instead of once per head.
     *
     * <p>Every head's chosen lists are summed into one accumulator and the {@code rescoreFactor * chosen} best keys
     * by that sum are cut once; each head re-scores those candidates over the key sketch (a chunk of rows read once
     * for the group) and turns its scores into softmax weights over the candidates, the sink and the window (its
     * estimate of the attention each key gets from it); the {@code chosen} keys with the largest sum of the heads'
     * weights are kept. That sum is the group's attention mass a key carries, so the cut keeps as much of the
     * heads' mass, taken together, as the estimates allow. With one head (or no re-scoring) it is exactly
     * {@link #selectBlock}'s choice.
     */
    public int[] selectShared(float[] queries, int first, int count, int dim, BudgetPlan plan, long[] positions) {
        if (count == 1) {
            return selectBlock(queries, first, 1, dim, plan, positions)[0];
        }
        int m = index.subspaces();
        Check.that(count * m < (1 << COUNT_BITS), "a shared selection sums fewer than " + (1 << COUNT_BITS)
                + " lists per key; heads x subspaces", "heads x subspaces", count * m);
        Scratch s = scratch.get();
        int from = plan.middleStart();
        int to = plan.middleEnd();
        int chosen = plan.chosen();
        int candidates = rescoreFactor > 0
                ? (int) Math.min(to - from, Math.ceil(rescoreFactor * chosen))
                : chosen;
        s.ensure(plan.keys(), 2 * PackedLists.UNIT_MAX * m * count + 1, count + 1, candidates);
        for (int q = 0; q < count; q++) {
            int off = (first + q) * dim;
            long position = positions == null ? index.defaultQueryPosition() : positions[first + q];
            accumulate(index.lookupQuery(queries, off, position), from, to, s.acc);
        }
        int[] picked = s.picked[0];
        int found = cutBySums(s, from, to, candidates, PackedLists.UNIT_MAX * m * count, picked);
        if (!(rescoreFactor > 0 && candidates > chosen) || found <= chosen) {
            return Selections.assembleAscending(plan, picked, Math.min(found, chosen));
        }
        int edges = plan.keys() - (to - from);
        int[] edgeIds = s.edgeIds(edges);
        for (int i = 0; i < from; i++) {
            edgeIds[i] = i;
        }
        for (int i = to; i < plan.keys(); i++) {
            edgeIds[from + i - to] = i;
        }
        float[] mass = s.scores[count];
        java.util.Arrays.fill(mass, 0, found, 0f);
        float[] edgeScores = s.edgeScores(edges);
        float scale = (float) (1.0 / Math.sqrt(dim));
        for (int c = 0; c < found; c += SHARED_CHUNK) {
            sketch.dotSelectedMany(kernels, queries, first * dim, dim, count, picked, c,
                    Math.min(SHARED_CHUNK, found - c), s.scores, c);
        }
        for (int q = 0; q < count; q++) {
            int off = (first + q) * dim;
            float[] scores = s.scores[q];
            if (edges > 0) {
                sketch.dotSelected(kernels, queries, off, edgeIds, 0, edges, edgeScores, 0);
            }
            for (int j = 0; j < found; j++) {
                scores[j] *= scale;
            }
            for (int j = 0; j < edges; j++) {
                edgeScores[j] *= scale;
            }
            float shift = Math.max(kernels.max(scores, 0, found), kernels.max(edgeScores, 0, edges));
            float total = kernels.expShifted(scores, 0, found, shift) + kernels.expShifted(edgeScores, 0, edges, shift);
            float inverse = 1f / total;
            for (int j = 0; j < found; j++) {
                mass[j] += scores[j] * inverse;
            }
        }
        int kept = TopK.keepLargest(mass, picked, found, chosen, s.radix);
        return Selections.assembleAscending(plan, picked, kept);
    }

    /** Re-scores every query's candidates (ascending keys) over the sketch, chunk by chunk of the key range. */
    private void rescoreInChunks(float[] queries, int[] offsets, int[] counts, int from, int to, Scratch s) {
        int[] cursor = new int[offsets.length];
        for (int chunkEnd = Math.min(to, from + RESCORE_CHUNK); ; chunkEnd = Math.min(to, chunkEnd + RESCORE_CHUNK)) {
            for (int q = 0; q < offsets.length; q++) {
                int[] picked = s.picked[q];
                int start = cursor[q];
                int end = start;
                while (end < counts[q] && picked[end] < chunkEnd) {
                    end++;
                }
                if (end > start) {
                    sketch.dotSelected(kernels, queries, offsets[q], picked, start, end - start, s.scores[q],
                            start);
                }
                cursor[q] = end;
            }
            if (chunkEnd == to) {
                return;
            }
        }
    }

    /** Adds the chosen lists' entries of keys in [from, to) into the accumulator. */
    private void accumulate(float[] lookup, int from, int to, int[] acc) {
        char[] offsets = packed.offsets();
        byte[] units = packed.units();
        StreamingOverflow overflow = index.overflow();
        for (int j = 0; j < index.subspaces(); j++) {
            int list = j * index.centroidCount() + index.nearestCentroid(kernels, lookup, 0, j);
            for (int b = 0; b < packed.blocks(); b++) {
                int base = b << PackedLists.BLOCK_BITS;
                int e = packed.start(list, b);
                int end = packed.start(list, b + 1);
                // a block's keys ascend: those outside [from, to) (the sink and the window) are at its two ends
                while (e < end && base + offsets[e] < from) {
                    e++;
                }
                while (end > e && base + offsets[end - 1] >= to) {
                    end--;
                }
                for (; e < end; e++) {
                    acc[base + offsets[e]] += (units[e] << COUNT_BITS) + 1;
                }
            }
            float estimate = index.missing()[list];
            for (int r = 0; r < overflow.count(list); r++) {
                int id = overflow.ids(list)[r];
                if (id >= from && id < to) {
                    acc[id] += (PackedLists.toUnits(overflow.scores(list)[r] - estimate, packed.unit())
                            << COUNT_BITS) + 1;
                }
            }
        }
    }

    /**
     * Writes to {@code picked}, in ascending order, the {@code wanted} keys of [from, to) with the largest sums
     * (a key met in no list sums to 0; ties go to the lower key), clears the accumulator and returns how many were
     * picked. A histogram of the sums finds the cut. Both passes run forwards without branches on the data: which
     * keys a query meets is random, and a branch on it would be mispredicted about every other key.
     */
    private static int cutBySums(Scratch s, int from, int to, int wanted, int offset, int[] picked) {
        int[] acc = s.acc;
        int[] histogram = s.histogram;
        int[] lanes = s.histogramLanes;
        java.util.Arrays.fill(lanes, 0);
        // four interleaved histograms: runs of keys with one sum (most often 0) would otherwise chain every
        // increment on the store of the previous one
        for (int id = from; id < to; id++) {
            lanes[(((acc[id] >> COUNT_BITS) + offset) << 2) | (id & 3)]++;
        }
        for (int b = 0; b < histogram.length; b++) {
            histogram[b] = lanes[4 * b] + lanes[4 * b + 1] + lanes[4 * b + 2] + lanes[4 * b + 3];
        }
        int cut = histogram.length - 1;
        int above = 0;
        while (above + histogram[cut] < wanted) {
            above += histogram[cut--];
        }
        int ties = wanted - above;
        cut -= offset;
        int count = 0;
        for (int id = from; id < to; id++) {
            int sum = acc[id] >> COUNT_BITS;
            acc[id] = 0;
            boolean tie = sum == cut && ties > 0;
            ties -= tie ? 1 : 0;
            picked[count] = id; // kept by advancing count
            count += sum > cut || tie ? 1 : 0;
        }
        return count;
    }

    @Override
    public void keysAppended() {
        float[] row = new float[cache.dim()];
        for (int id = index.keys() + appended; id < cache.size(); id++) {
            cache.keyRows(kernels, id, 1, row, 0);
            index.insert(kernels, row, 0, id);
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

    /**
     * Per-thread buffers sized to the cache and the block, reused across queries; the accumulator is left zeroed.
     * {@code picked[q]} and {@code scores[q]} hold query q's candidates and their scores.
     */
    private static final class Scratch {
        int[] acc = new int[0];
        int[][] picked = new int[0][];
        float[][] scores = new float[0][];
        int[] histogram = new int[0];
        int[] histogramLanes = new int[0];
        final int[] radix = new int[TopK.RADIX_BUCKETS];
        int[] edgeIds = new int[0];
        float[] edgeScores = new float[0];

        int[] edgeIds(int n) {
            if (edgeIds.length < n) {
                edgeIds = new int[n];
            }
            return edgeIds;
        }

        float[] edgeScores(int n) {
            if (edgeScores.length < n) {
                edgeScores = new float[n];
            }
            return edgeScores;
        }

        void ensure(int n, int histogramSize, int block, int candidates) {
            if (acc.length < n) {
                acc = new int[n];
            }
            // one slot past the candidates: the cut writes a key before deciding to keep it
            int width = Math.max(candidates, 0) + 1;
            if (picked.length < block || picked[0].length < width) {
                int rows = Math.max(block, picked.length);
                picked = new int[rows][width];
                scores = new float[rows][width];
            }
            if (histogram.length != histogramSize) {
                histogram = new int[histogramSize];
                histogramLanes = new int[4 * histogramSize];
            }
        }
    }
}
