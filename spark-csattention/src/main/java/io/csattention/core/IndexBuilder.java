package io.csattention.core;

import io.csattention.kernel.VectorKernels;

import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.stream.IntStream;

/**
 * The prefill build of one KV head's index on the CPU: k-means of the prefill queries per subspace, then per centroid
 * the L keys with the largest partial score, the list's floor and the estimate of absent keys. The GPU build
 * ({@code device.cuda.CudaIndexBuilder}) runs the same steps from the same {@link Geometry}.
 */
public final class IndexBuilder {

    private IndexBuilder() {
    }

    /**
     * What a build derives from its inputs and settings before any table is computed: N, d, m, the subspace width,
     * alpha, L, the k-means sample of the prefill queries and C.
     */
    public record Geometry(int keys, int dim, int subspaces, int width, double listFraction, int listLength,
                           int[] sample, int centroids) {

        /** Checks the inputs and resolves the settings' defaults against them. */
        public static Geometry of(FloatMatrix keys, FloatMatrix prefillQueries, CSAttentionSettings settings) {
            int n = keys.rows();
            int d = keys.cols();
            Check.positive(n, "keys");
            Check.that(prefillQueries.cols() == d, "prefill queries must have the keys' dimension " + d,
                    "prefill-queries.cols", prefillQueries.cols());
            Check.positive(prefillQueries.rows(), "prefill queries");
            int m = settings.resolveSubspaces(d);
            double alpha = settings.resolveListFraction(n);
            int[] sample = sampleRows(prefillQueries.rows(), settings.kmeansSamples(), settings.seed());
            return new Geometry(n, d, m, d / m, alpha, IndexBuilder.listLength(n, alpha), sample,
                    settings.resolveCentroids(sample.length));
        }

        /** The index shape of a build with these values and {@code settings}. */
        public IndexShape shape(CSAttentionSettings settings) {
            return new IndexShape(keys, dim, subspaces, centroids, listLength, listFraction, settings.seed(),
                    settings.distance(), settings.missingScore());
        }
    }

    /**
     * Builds the index, treating slow RoPE bands position-free when {@code rope} is given (see {@link RopeInfo});
     * {@code rope == null} treats every subspace as it is.
     */
    public static CSAttentionIndex build(VectorKernels kernels, FloatMatrix keys, FloatMatrix prefillQueries,
                                         CSAttentionSettings settings, RopeInfo rope) {
        Geometry g = Geometry.of(keys, prefillQueries, settings);
        int n = g.keys();
        int d = g.dim();
        int m = g.subspaces();
        int width = g.width();
        int listLength = g.listLength();
        int[] sample = g.sample();
        int c = g.centroids();
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
        return new CSAttentionIndex(new IndexTables(g.shape(settings), centroids, listIds, listScores, floors,
                missing, rope, positionFree, scoringCentroids));
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
        int[] sample = Arrays.copyOf(all, limit);
        Arrays.sort(sample);
        return sample;
    }
}
