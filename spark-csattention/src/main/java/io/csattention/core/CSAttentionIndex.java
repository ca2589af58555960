package io.csattention.core;

import io.csattention.kernel.VectorKernels;

/**
 * The query-centric lookup index of one KV head: its {@link IndexTables} (per subspace, C centroids of the prefill
 * queries, and per centroid the L keys with the largest partial score against it, with the list's floor and the
 * estimate used for absent keys), the lookup a decode query makes in them, and the {@link StreamingOverflow} of keys
 * appended after the build. {@link IndexBuilder} builds it; index files read it back from its tables.
 */
public final class CSAttentionIndex {

    /** Version of the in-memory layout, written into index files. */
    public static final int LAYOUT_VERSION = 1;

    private final IndexTables tables;
    private final IndexShape shape;
    private final StreamingOverflow overflow;

    public CSAttentionIndex(IndexTables tables) {
        this.tables = tables;
        this.shape = tables.shape();
        this.overflow = new StreamingOverflow(shape.lists());
    }

    /**
     * Builds the index of one KV head from its keys [N, d] and the prefill queries [N_p, d] of every query head that
     * shares it.
     */
    public static CSAttentionIndex build(VectorKernels kernels, FloatMatrix keys, FloatMatrix prefillQueries,
                                         CSAttentionSettings settings) {
        return IndexBuilder.build(kernels, keys, prefillQueries, settings, null);
    }

    /** {@link IndexBuilder#build}: slow RoPE bands position-free when {@code rope} is given. */
    public static CSAttentionIndex build(VectorKernels kernels, FloatMatrix keys, FloatMatrix prefillQueries,
                                         CSAttentionSettings settings, RopeInfo rope) {
        return IndexBuilder.build(kernels, keys, prefillQueries, settings, rope);
    }

    /**
     * The lookup form of a decode query at {@code position}: in the pair layout with slow bands de-rotated when the
     * index knows RoPE, the query itself otherwise.
     */
    public float[] lookupQuery(float[] query, int queryOff, long position) {
        int dim = shape.dim();
        float[] q = new float[dim];
        RopeInfo rope = tables.rope();
        if (rope == null) {
            System.arraycopy(query, queryOff, q, 0, dim);
            return q;
        }
        for (int i = 0; i < dim; i++) {
            q[i] = query[queryOff + rope.sourceDimension(i, dim)];
        }
        IndexBuilder.derotateBands(q, 0, dim, shape.width(), tables.positionFree(), rope, position);
        return q;
    }

    /** The position a decode query is assumed at when none is given: the reference position, or the key count. */
    public long defaultQueryPosition() {
        return tables.rope() == null ? shape.keys() : tables.rope().referencePosition();
    }

    /** The centroid of subspace {@code j} chosen by a query's sub-vector. */
    public int nearestCentroid(VectorKernels kernels, float[] query, int queryOff, int j) {
        int width = shape.width();
        int centroidCount = shape.centroidCount();
        float[] centroids = tables.centroids();
        boolean innerProduct = shape.distance() == CentroidDistance.INNER_PRODUCT;
        int best = 0;
        float bestValue = Float.NEGATIVE_INFINITY;
        for (int c = 0; c < centroidCount; c++) {
            int offset = (j * centroidCount + c) * width;
            float value = innerProduct
                    ? kernels.dot(query, queryOff + j * width, centroids, offset, width)
                    : -kernels.squaredDistance(query, queryOff + j * width, centroids, offset, width);
            if (value > bestValue) {
                bestValue = value;
                best = c;
            }
        }
        return best;
    }

    /**
     * Streaming insertion of key {@code id} (a row of {@code keyData}): it joins the overflow of every list whose
     * floor it beats.
     */
    public void insert(VectorKernels kernels, float[] keyData, int id) {
        insert(kernels, keyData, id * shape.dim(), id);
    }

    /** Streams key {@code id}, whose row is {@code keyData[keyOff .. keyOff + d)}, into the lists it enters. */
    public void insert(VectorKernels kernels, float[] keyData, int keyOff, int id) {
        overflow.append(kernels, tables, keyData, keyOff, id);
    }

    /** The tables as built or read (the streamed entries are not part of them). */
    public IndexTables tables() {
        return tables;
    }

    public IndexShape shape() {
        return shape;
    }

    public int keys() {
        return shape.keys();
    }

    public int dim() {
        return shape.dim();
    }

    public int subspaces() {
        return shape.subspaces();
    }

    public int centroidCount() {
        return shape.centroidCount();
    }

    public int listLength() {
        return shape.listLength();
    }

    public double listFraction() {
        return shape.listFraction();
    }

    public long seed() {
        return shape.seed();
    }

    public CentroidDistance distance() {
        return shape.distance();
    }

    public MissingScore missingScore() {
        return shape.missingScore();
    }

    public float[] centroids() {
        return tables.centroids();
    }

    public int[] listIds() {
        return tables.listIds();
    }

    public float[] listScores() {
        return tables.listScores();
    }

    public float[] floors() {
        return tables.floors();
    }

    public float[] missing() {
        return tables.missing();
    }

    /** RoPE information the index was built with, or null. */
    public RopeInfo rope() {
        return tables.rope();
    }

    public boolean[] positionFree() {
        return tables.positionFree().clone();
    }

    public float[] scoringCentroids() {
        return tables.scoringCentroids();
    }

    StreamingOverflow overflow() {
        return overflow;
    }

    /**
     * This index without its build-form lists (everything else shared, a new empty overflow): what a decoder keeps
     * once it has packed the lists ({@link PackedLists}), so the float lists can be collected.
     */
    public CSAttentionIndex withoutLists() {
        Check.that(overflow.isEmpty(), "lists can be dropped only before keys are streamed in",
                "overflow.entries", overflow.bytes() / 8);
        return new CSAttentionIndex(tables.withoutLists());
    }

    /** Whether the build-form lists were dropped ({@link #withoutLists}). */
    public boolean listsDropped() {
        return tables.listIds().length == 0;
    }

    /** Bytes of everything but the built lists: centroids, floors, estimates and streamed entries. */
    public long tableBytes() {
        return bytes() - 8L * tables.listIds().length;
    }

    /** Bytes of the entries of keys streamed in after the build (0 for an index as built or read). */
    public long streamedBytes() {
        return overflow.bytes();
    }

    /** Bytes of centroids, lists (4-byte id and 4-byte score per entry), floors and estimates. */
    public long bytes() {
        return tables.bytes() + overflow.bytes();
    }
}
