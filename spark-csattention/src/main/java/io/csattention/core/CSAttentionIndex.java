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
    private final Overflow overflow;

    public CSAttentionIndex(int keys, int dim, int subspaces, int centroidCount, int listLength, double listFraction,
                            long seed, CentroidDistance distance, MissingScore missingScore, float[] centroids,
                            int[] listIds, float[] listScores, float[] floors, float[] missing) {
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
        int lists = subspaces * centroidCount;
        Check.that(centroids.length == lists * (dim / subspaces), "centroids must hold m*C*d/m floats",
                "centroids.length", centroids.length);
        Check.that(listIds.length == (long) lists * listLength && listScores.length == listIds.length,
                "lists must hold m*C*L entries", "lists.length", listIds.length);
        this.overflow = new Overflow(lists);
    }

    /**
     * Builds the index of one KV head from its keys [N, d] and the prefill queries [N_p, d] of every query head that
     * shares it.
     */
    public static CSAttentionIndex build(VectorKernels kernels, FloatMatrix keys, FloatMatrix prefillQueries,
                                         CSAttentionSettings settings) {
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

        float[] centroids = new float[m * c * width];
        IntStream.range(0, m).parallel().forEach(j -> {
            float[] trained = KMeans.train(kernels, prefillQueries.data(), d, j * width, width, sample, c,
                    settings.kmeansIterations(), settings.seed() + 1_000_003L * j);
            System.arraycopy(trained, 0, centroids, j * c * width, trained.length);
        });

        int lists = m * c;
        int[] listIds = new int[lists * listLength];
        float[] listScores = new float[lists * listLength];
        float[] floors = new float[lists];
        float[] missing = new float[lists];
        float[] keyData = keys.data();
        IntStream.range(0, lists).parallel().forEach(list -> {
            int j = list / c;
            float[] scores = new float[n];
            kernels.dotRows(centroids, list * width, keyData, d, j * width, width, 0, n, scores, 0);
            int[] top = TopK.largestInRange(scores, 0, n, listLength);
            sortByScoreDescending(top, scores);
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
                settings.missingScore(), centroids, listIds, listScores, floors, missing);
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

    private static void sortByScoreDescending(int[] ids, float[] scores) {
        Integer[] boxed = new Integer[ids.length];
        for (int i = 0; i < ids.length; i++) {
            boxed[i] = ids[i];
        }
        java.util.Arrays.sort(boxed, (a, b) -> {
            int byScore = Float.compare(scores[b], scores[a]);
            return byScore != 0 ? byScore : Integer.compare(a, b);
        });
        for (int i = 0; i < ids.length; i++) {
            ids[i] = boxed[i];
        }
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
        for (int list = 0; list < subspaces * centroidCount; list++) {
            int j = list / centroidCount;
            float score = kernels.dot(centroids, list * width, keyData, id * dim + j * width, width);
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

    Overflow overflow() {
        return overflow;
    }

    /** Bytes of centroids, lists (4-byte id and 4-byte score per entry), floors and estimates. */
    public long bytes() {
        return 4L * centroids.length + 8L * listIds.length + 8L * floors.length + overflow.bytes();
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

        long bytes() {
            long total = 0;
            for (int c : counts) {
                total += 8L * c;
            }
            return total;
        }
    }
}
