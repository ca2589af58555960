package io.csattention.core;

import io.csattention.kernel.VectorKernels;

import java.util.SplittableRandom;
import java.util.stream.IntStream;

/**
 * The query-centric lookup tables of one KV head: per subspace, C centroids of the prefill queries, and per centroid
 * the L keys with the largest partial score against it, with the list's floor and the estimate used for absent keys.
 *
 * <p>Layout (all row-major): centroids [m, C, d/m]; listIds and listScores [m, C, L], each list sorted by descending
 * score; floors and missing [m, C]. Keys appended after the build (streaming) that beat a list's floor are added to
 * that list's overflow: L is not fixed, it grows by about alpha per appended key, so L stays close to alpha * N and
 * the floors stay as built.
 */
public final class CSAttentionIndex {

    /** Version of the in-memory layout, written into index files. */
    public static final int LAYOUT_VERSION = 1;

    private final int keys;
    private final int dim;
    private final int subspaces;
    private final int centroidCount;
    private final int listLength;
    private final double listFraction;
    private final long seed;
    private final CentroidDistance distance;
    private final MissingScore missingScore;
    private final float[] centroids;
    private final int[] listIds;
    private final float[] listScores;
    private final float[] floors;
    private final float[] missing;
    private final RopeInfo rope;
    private final boolean[] positionFree;
    private final float[] scoringCentroids;
    private final Overflow overflow;

    /** An index built without RoPE information: every subspace as it is. */
    public CSAttentionIndex(int keys, int dim, int subspaces, int centroidCount, int listLength, double listFraction,
                            long seed, CentroidDistance distance, MissingScore missingScore, float[] centroids,
                            int[] listIds, float[] listScores, float[] floors, float[] missing) {
        this(keys, dim, subspaces, centroidCount, listLength, listFraction, seed, distance, missingScore, centroids,
                listIds, listScores, floors, missing, null, new boolean[subspaces], centroids);
    }

    /**
     * The full form. With {@code rope} set, centroids and lists live in the pair-contiguous layout of
     * {@link RopeInfo#sourceDimension}; {@code positionFree[j]} marks the slow bands whose {@code centroids} are
     * position-free and whose {@code scoringCentroids} (used for the lists and streaming) are rotated to the
     * reference position.
     */
    public CSAttentionIndex(int keys, int dim, int subspaces, int centroidCount, int listLength, double listFraction,
                            long seed, CentroidDistance distance, MissingScore missingScore, float[] centroids,
                            int[] listIds, float[] listScores, float[] floors, float[] missing, RopeInfo rope,
                            boolean[] positionFree, float[] scoringCentroids) {
        this.keys = keys;
        this.dim = dim;
        this.subspaces = subspaces;
        this.centroidCount = centroidCount;
        this.listLength = listLength;
        this.listFraction = listFraction;
        this.seed = seed;
        this.distance = distance;
        this.missingScore = missingScore;
        this.centroids = centroids;
        this.listIds = listIds;
        this.listScores = listScores;
        this.floors = floors;
        this.missing = missing;
        this.rope = rope;
        this.positionFree = positionFree.clone();
        this.scoringCentroids = scoringCentroids;
        int lists = subspaces * centroidCount;
        Check.that(centroids.length == lists * (dim / subspaces), "centroids must hold m*C*d/m floats",
                "centroids.length", centroids.length);
        Check.that(scoringCentroids.length == centroids.length, "scoring centroids must hold m*C*d/m floats",
                "scoringCentroids.length", scoringCentroids.length);
        Check.that(positionFree.length == subspaces, "positionFree must have one flag per subspace",
                "positionFree.length", positionFree.length);
        Check.that((listIds.length == (long) lists * listLength || listIds.length == 0)
                        && listScores.length == listIds.length,
                "lists must hold m*C*L entries (or none, once dropped)", "lists.length", listIds.length);
        this.overflow = new Overflow(lists);
    }

    /**
     * Builds the index of one KV head from its keys [N, d] and the prefill queries [N_p, d] of every query head that
     * shares it.
     */
    public static CSAttentionIndex build(VectorKernels kernels, FloatMatrix keys, FloatMatrix prefillQueries,
                                         CSAttentionSettings settings) {
        return build(kernels, keys, prefillQueries, settings, null);
    }

    /**
     * Builds the index, treating slow RoPE bands position-free when {@code rope} is given (see {@link RopeInfo});
     * {@code rope == null} treats every subspace as it is.
     */
    public static CSAttentionIndex build(VectorKernels kernels, FloatMatrix keys, FloatMatrix prefillQueries,
                                         CSAttentionSettings settings, RopeInfo rope) {
        int n = keys.rows();
        int d = keys.cols();
        Check.positive(n, "keys");
        Check.that(prefillQueries.cols() == d, "prefill queries must have the keys' dimension " + d,
                "prefill-queries.cols", prefillQueries.cols());
        Check.positive(prefillQueries.rows(), "prefill queries");
        int m = settings.resolveSubspaces(d);
        int width = d / m;
        double alpha = settings.resolveListFraction(n);
        int listLength = listLength(n, alpha);
        int[] sample = sampleRows(prefillQueries.rows(), settings.kmeansSamples(), settings.seed());
        int c = settings.resolveCentroids(sample.length);
        boolean[] positionFree = new boolean[m];
        float[] keyData = keys.data();
        float[] queryData = prefillQueries.data();
        if (rope != null) {
            Check.that(width % 2 == 0, "with RoPE every subspace must hold whole pairs (d/m even)", "d/m", width);
            Check.that(rope.prefillPositions().length == prefillQueries.rows(),
                    "prefill query positions must have one entry per prefill query " + prefillQueries.rows(),
                    "positions", rope.prefillPositions().length);
            for (int j = 0; j < m; j++) {
                positionFree[j] = rope.theta(j * width / 2, d) * rope.decodeSpan() <= RopeInfo.MAX_DRIFT_RADIANS;
            }
            keyData = toPairLayout(keyData, n, d, rope);
            queryData = toPairLayout(queryData, prefillQueries.rows(), d, rope);
            for (int row : sample) {
                derotateBands(queryData, row * d, d, width, positionFree, rope, rope.prefillPositions()[row]);
            }
        }

        float[] centroids = new float[m * c * width];
        float[] clusterData = queryData;
        IntStream.range(0, m).parallel().forEach(j -> {
            float[] trained = KMeans.train(kernels, clusterData, d, j * width, width, sample, c,
                    settings.kmeansIterations(), settings.seed() + 1_000_003L * j);
            System.arraycopy(trained, 0, centroids, j * c * width, trained.length);
        });
        float[] scoringCentroids = centroids;
        if (rope != null) {
            scoringCentroids = centroids.clone();
            for (int j = 0; j < m; j++) {
                if (positionFree[j]) {
                    for (int k = 0; k < c; k++) {
                        rotatePairs(scoringCentroids, (j * c + k) * width, j * width / 2, width / 2, d,
                                rope.referencePosition(), rope);
                    }
                }
            }
        }

        int lists = m * c;
        int[] listIds = new int[lists * listLength];
        float[] listScores = new float[lists * listLength];
        float[] floors = new float[lists];
        float[] missing = new float[lists];
        float[] scoredKeys = keyData;
        float[] scoring = scoringCentroids;
        IntStream.range(0, lists).parallel().forEach(list -> {
            int j = list / c;
            float[] scores = new float[n];
            kernels.dotRows(scoring, list * width, scoredKeys, d, j * width, width, 0, n, scores, 0);
            int[] top = TopK.largestInRange(scores, 0, n, listLength);
            TopK.sortBestFirst(top, top.length, scores, 0);
            double total = 0;
            for (float s : scores) {
                total += s;
            }
            double kept = 0;
            for (int r = 0; r < listLength; r++) {
                listIds[list * listLength + r] = top[r];
                listScores[list * listLength + r] = scores[top[r]];
                kept += scores[top[r]];
            }
            floors[list] = scores[top[listLength - 1]];
            missing[list] = switch (settings.missingScore()) {
                case FLOOR -> floors[list];
                case MEAN_BELOW_FLOOR -> n > listLength ? (float) ((total - kept) / (n - listLength)) : floors[list];
                case ZERO -> 0f;
            };
        });
        return new CSAttentionIndex(n, d, m, c, listLength, alpha, settings.seed(), settings.distance(),
                settings.missingScore(), centroids, listIds, listScores, floors, missing, rope, positionFree,
                scoringCentroids);
    }

    /** Rows of {@code data} [rows, d] reordered into the pair-contiguous layout of {@code rope}. */
    static float[] toPairLayout(float[] data, int rows, int d, RopeInfo rope) {
        float[] out = new float[rows * d];
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < d; i++) {
                out[r * d + i] = data[r * d + rope.sourceDimension(i, d)];
            }
        }
        return out;
    }

    /** Rotates {@code pairs} consecutive pairs at {@code off} (pair-contiguous layout), starting at pair {@code first}. */
    static void rotatePairs(float[] x, int off, int first, int pairs, int d, double position, RopeInfo rope) {
        for (int k = 0; k < pairs; k++) {
            double angle = position * rope.theta(first + k, d);
            double cos = Math.cos(angle);
            double sin = Math.sin(angle);
            double a = x[off + 2 * k];
            double b = x[off + 2 * k + 1];
            x[off + 2 * k] = (float) (a * cos - b * sin);
            x[off + 2 * k + 1] = (float) (a * sin + b * cos);
        }
    }

    /** De-rotates the position-free bands of one pair-layout row that sits at {@code position}. */
    static void derotateBands(float[] row, int off, int d, int width, boolean[] positionFree, RopeInfo rope,
                              long position) {
        for (int j = 0; j < positionFree.length; j++) {
            if (positionFree[j]) {
                rotatePairs(row, off + j * width, j * width / 2, width / 2, d, -position, rope);
            }
        }
    }

    /**
     * The lookup form of a decode query at {@code position}: in the pair layout with slow bands de-rotated when the
     * index knows RoPE, the query itself otherwise.
     */
    public float[] lookupQuery(float[] query, int queryOff, long position) {
        float[] q = new float[dim];
        if (rope == null) {
            System.arraycopy(query, queryOff, q, 0, dim);
            return q;
        }
        for (int i = 0; i < dim; i++) {
            q[i] = query[queryOff + rope.sourceDimension(i, dim)];
        }
        derotateBands(q, 0, dim, dim / subspaces, positionFree, rope, position);
        return q;
    }

    /** The position a decode query is assumed at when none is given: the reference position, or the key count. */
    public long defaultQueryPosition() {
        return rope == null ? keys : rope.referencePosition();
    }

    /** L, the keys each centroid's list keeps for a context of {@code keys} keys: ceil(alpha * N), at least 1. */
    public static int listLength(int keys, double alpha) {
        return (int) Math.min(keys, Math.max(1, Math.ceil(alpha * keys - 1e-9)));
    }

    /**
     * A seeded sample of at most {@code limit} row indices out of {@code rows}, in ascending order: the prefill
     * queries k-means trains on.
     */
    public static int[] sampleRows(int rows, int limit, long seed) {
        if (rows <= limit) {
            return IntStream.range(0, rows).toArray();
        }
        int[] all = IntStream.range(0, rows).toArray();
        SplittableRandom random = new SplittableRandom(seed ^ 0x5DEECE66DL);
        for (int i = 0; i < limit; i++) {
            int swap = i + random.nextInt(rows - i);
            int t = all[i];
            all[i] = all[swap];
            all[swap] = t;
        }
        int[] sample = java.util.Arrays.copyOf(all, limit);
        java.util.Arrays.sort(sample);
        return sample;
    }

    /** The centroid of subspace {@code j} chosen by a query's sub-vector. */
    public int nearestCentroid(VectorKernels kernels, float[] query, int queryOff, int j) {
        int width = dim / subspaces;
        int best = 0;
        float bestValue = Float.NEGATIVE_INFINITY;
        for (int c = 0; c < centroidCount; c++) {
            int offset = (j * centroidCount + c) * width;
            float value = distance == CentroidDistance.INNER_PRODUCT
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
        int width = dim / subspaces;
        float[] key = new float[dim];
        for (int i = 0; i < dim; i++) {
            key[i] = keyData[id * dim + (rope == null ? i : rope.sourceDimension(i, dim))];
        }
        for (int list = 0; list < subspaces * centroidCount; list++) {
            int j = list / centroidCount;
            float score = kernels.dot(scoringCentroids, list * width, key, j * width, width);
            if (score > floors[list]) {
                overflow.add(list, id, score);
            }
        }
    }

    public int keys() {
        return keys;
    }

    public int dim() {
        return dim;
    }

    public int subspaces() {
        return subspaces;
    }

    public int centroidCount() {
        return centroidCount;
    }

    public int listLength() {
        return listLength;
    }

    public double listFraction() {
        return listFraction;
    }

    public long seed() {
        return seed;
    }

    public CentroidDistance distance() {
        return distance;
    }

    public MissingScore missingScore() {
        return missingScore;
    }

    public float[] centroids() {
        return centroids;
    }

    public int[] listIds() {
        return listIds;
    }

    public float[] listScores() {
        return listScores;
    }

    public float[] floors() {
        return floors;
    }

    public float[] missing() {
        return missing;
    }

    /** RoPE information the index was built with, or null. */
    public RopeInfo rope() {
        return rope;
    }

    public boolean[] positionFree() {
        return positionFree.clone();
    }

    public float[] scoringCentroids() {
        return scoringCentroids;
    }

    Overflow overflow() {
        return overflow;
    }

    /**
     * This index without its build-form lists (everything else shared, a new empty overflow): what a decoder keeps
     * once it has packed the lists ({@link PackedLists}), so the float lists can be collected.
     */
    public CSAttentionIndex withoutLists() {
        Check.that(overflow.isEmpty(), "lists can be dropped only before keys are streamed in",
                "overflow.entries", overflow.bytes() / 8);
        return new CSAttentionIndex(keys, dim, subspaces, centroidCount, listLength, listFraction, seed, distance,
                missingScore, centroids, new int[0], new float[0], floors, missing, rope, positionFree,
                scoringCentroids);
    }

    /** Whether the build-form lists were dropped ({@link #withoutLists}). */
    public boolean listsDropped() {
        return listIds.length == 0;
    }

    /** Bytes of everything but the built lists: centroids, floors, estimates and streamed entries. */
    public long tableBytes() {
        return bytes() - 8L * listIds.length;
    }

    /** Bytes of the entries of keys streamed in after the build (0 for an index as built or read). */
    public long streamedBytes() {
        return overflow.bytes();
    }

    /** Bytes of centroids, lists (4-byte id and 4-byte score per entry), floors and estimates. */
    public long bytes() {
        long scoring = scoringCentroids == centroids ? 0 : 4L * scoringCentroids.length;
        return 4L * centroids.length + scoring + 8L * listIds.length + 8L * floors.length + overflow.bytes();
    }

    /** Streamed keys per list, appended after the build. */
    static final class Overflow {
        private final int[][] ids;
        private final float[][] scores;
        private final int[] counts;

        Overflow(int lists) {
            ids = new int[lists][];
            scores = new float[lists][];
            counts = new int[lists];
        }

        synchronized void add(int list, int id, float score) {
            if (ids[list] == null) {
                ids[list] = new int[4];
                scores[list] = new float[4];
            } else if (counts[list] == ids[list].length) {
                ids[list] = java.util.Arrays.copyOf(ids[list], counts[list] * 2);
                scores[list] = java.util.Arrays.copyOf(scores[list], counts[list] * 2);
            }
            ids[list][counts[list]] = id;
            scores[list][counts[list]++] = score;
        }

        int count(int list) {
            return counts[list];
        }

        int[] ids(int list) {
            return ids[list];
        }

        float[] scores(int list) {
            return scores[list];
        }

        boolean isEmpty() {
            for (int c : counts) {
                if (c > 0) {
                    return false;
                }
            }
            return true;
        }

        long bytes() {
            long total = 0;
            for (int c : counts) {
                total += 8L * c;
            }
            return total;
        }
    }
}
