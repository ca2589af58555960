package io.csattention.core;

import io.csattention.kernel.VectorKernels;

import java.util.SplittableRandom;
import java.util.stream.IntStream;

/**
 * Seeded k-means over one column block (a subspace) of a row-major matrix: k-means++ seeding, bounded Lloyd
 * iterations under squared L2, empty clusters re-seeded with the point farthest from its centroid. Deterministic for
 * a seed: assignments run in parallel, sums are accumulated in point order.
 */
public final class KMeans {

    private KMeans() {
    }

    /**
     * Clusters rows {@code data[r*stride + colOff .. +width)} of the given rows into at most {@code k} centroids.
     * When there are no more rows than {@code k}, the rows themselves are the centroids. Returns [k', width] with
     * {@code k' = min(k, rows.length)}.
     */
    public static float[] train(VectorKernels kernels, float[] data, int stride, int colOff, int width, int[] rows,
                                int k, int iterations, long seed) {
        int n = rows.length;
        Check.positive(n, "prefill query rows");
        int clusters = Math.min(k, n);
        float[] points = gather(data, stride, colOff, width, rows);
        if (clusters == n) {
            return points;
        }
        float[] centroids = seedPlusPlus(kernels, points, n, width, clusters, new SplittableRandom(seed));
        int[] assignment = new int[n];
        float[] distance = new float[n];
        for (int iteration = 0; iteration < iterations; iteration++) {
            boolean changed = assign(kernels, points, n, width, centroids, clusters, assignment, distance);
            update(points, n, width, centroids, clusters, assignment, distance);
            if (!changed && iteration > 0) {
                break;
            }
        }
        return centroids;
    }

    /**
     * The centroids {@link #train} starts its Lloyd iterations from (k-means++ for the same arguments), or the rows
     * themselves when there are no more rows than {@code k}. Other backends that run the iterations elsewhere (the
     * GPU) start from these, so that both arrive at the same index.
     */
    public static float[] initialCentroids(VectorKernels kernels, float[] data, int stride, int colOff, int width,
                                           int[] rows, int k, long seed) {
        int n = rows.length;
        Check.positive(n, "prefill query rows");
        float[] points = gather(data, stride, colOff, width, rows);
        int clusters = Math.min(k, n);
        return clusters == n ? points : seedPlusPlus(kernels, points, n, width, clusters, new SplittableRandom(seed));
    }

    /** Rows {@code data[r*stride + colOff .. +width)} of the given rows, packed [rows.length, width]. */
    public static float[] gather(float[] data, int stride, int colOff, int width, int[] rows) {
        float[] points = new float[rows.length * width];
        for (int i = 0; i < rows.length; i++) {
            System.arraycopy(data, rows[i] * stride + colOff, points, i * width, width);
        }
        return points;
    }

    private static float[] seedPlusPlus(VectorKernels kernels, float[] points, int n, int width, int clusters,
                                        SplittableRandom random) {
        float[] centroids = new float[clusters * width];
        int first = random.nextInt(n);
        System.arraycopy(points, first * width, centroids, 0, width);
        double[] nearest = new double[n];
        for (int i = 0; i < n; i++) {
            nearest[i] = kernels.squaredDistance(points, i * width, centroids, 0, width);
        }
        for (int c = 1; c < clusters; c++) {
            double total = 0;
            for (double v : nearest) {
                total += v;
            }
            int chosen;
            if (total <= 0) {
                chosen = random.nextInt(n);
            } else {
                double target = random.nextDouble() * total;
                chosen = n - 1;
                double running = 0;
                for (int i = 0; i < n; i++) {
                    running += nearest[i];
                    if (running >= target) {
                        chosen = i;
                        break;
                    }
                }
            }
            System.arraycopy(points, chosen * width, centroids, c * width, width);
            final int cc = c;
            IntStream.range(0, n).parallel().forEach(i -> {
                double dist = kernels.squaredDistance(points, i * width, centroids, cc * width, width);
                if (dist < nearest[i]) {
                    nearest[i] = dist;
                }
            });
        }
        return centroids;
    }

    private static boolean assign(VectorKernels kernels, float[] points, int n, int width, float[] centroids,
                                  int clusters, int[] assignment, float[] distance) {
        boolean[] changed = new boolean[1];
        IntStream.range(0, n).parallel().forEach(i -> {
            int best = 0;
            float bestDistance = Float.POSITIVE_INFINITY;
            for (int c = 0; c < clusters; c++) {
                float dist = kernels.squaredDistance(points, i * width, centroids, c * width, width);
                if (dist < bestDistance) {
                    bestDistance = dist;
                    best = c;
                }
            }
            if (assignment[i] != best) {
                assignment[i] = best;
                changed[0] = true;
            }
            distance[i] = bestDistance;
        });
        return changed[0];
    }

    private static void update(float[] points, int n, int width, float[] centroids, int clusters, int[] assignment,
                               float[] distance) {
        double[] sums = new double[clusters * width];
        int[] counts = new int[clusters];
        for (int i = 0; i < n; i++) {
            int c = assignment[i];
            counts[c]++;
            for (int j = 0; j < width; j++) {
                sums[c * width + j] += points[i * width + j];
            }
        }
        for (int c = 0; c < clusters; c++) {
            if (counts[c] == 0) {
                int farthest = 0;
                for (int i = 1; i < n; i++) {
                    if (distance[i] > distance[farthest]) {
                        farthest = i;
                    }
                }
                System.arraycopy(points, farthest * width, centroids, c * width, width);
                distance[farthest] = 0;
                assignment[farthest] = c;
                continue;
            }
            for (int j = 0; j < width; j++) {
                centroids[c * width + j] = (float) (sums[c * width + j] / counts[c]);
            }
        }
    }
}
