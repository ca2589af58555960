package io.csattention.baseline;

import io.csattention.core.BudgetPlan;
import io.csattention.core.KMeans;
import io.csattention.core.KeySelector;
import io.csattention.core.KeyValueCache;
import io.csattention.core.Selections;
import io.csattention.core.TopK;
import io.csattention.kernel.VectorKernels;

import java.util.stream.IntStream;

/**
 * Key-centric clustering (the RetrievalAttention / ClusterKV family): k-means over the keys themselves, every key
 * assigned to its nearest centroid; a query scores the centroids by inner product and takes whole clusters, best
 * first, until the budget is spent (the last cluster contributing its lowest key ids). Streamed keys join their
 * nearest cluster.
 */
public final class KeyClusterSelector implements KeySelector {

    /** Average keys per cluster when the number of clusters is not given. */
    public static final int DEFAULT_KEYS_PER_CLUSTER = 32;
    private static final int MAX_CLUSTERS = 1024;
    private static final int TRAINING_SAMPLES = 16384;

    private final VectorKernels kernels;
    private final KeyValueCache cache;
    private final int clusters;
    private final float[] centroids;
    private int[][] members;
    private int[] memberCounts;
    private int indexedKeys;

    public KeyClusterSelector(VectorKernels kernels, KeyValueCache cache, int clusterCount, int iterations,
                              long seed) {
        this.kernels = kernels;
        this.cache = cache;
        int n = cache.size();
        int d = cache.dim();
        int wanted = clusterCount > 0 ? clusterCount
                : Math.min(MAX_CLUSTERS, Math.max(1, n / DEFAULT_KEYS_PER_CLUSTER));
        int[] sample = sample(n, seed);
        float[] keys = cache.precision() == KeyValueCache.Precision.F32 ? cache.keys() : cache.keyMatrix().data();
        this.centroids = KMeans.train(kernels, keys, d, 0, d, sample, wanted, iterations, seed);
        this.clusters = centroids.length / d;
        this.members = new int[clusters][];
        this.memberCounts = new int[clusters];
        int[] assignment = new int[n];
        IntStream.range(0, n).parallel().forEach(i -> assignment[i] = nearest(keys, i * d));
        for (int i = 0; i < n; i++) {
            add(assignment[i], i);
        }
        indexedKeys = n;
    }

    private static int[] sample(int n, long seed) {
        if (n <= TRAINING_SAMPLES) {
            return IntStream.range(0, n).toArray();
        }
        java.util.SplittableRandom random = new java.util.SplittableRandom(seed);
        return random.ints(TRAINING_SAMPLES, 0, n).sorted().distinct().toArray();
    }

    private int nearest(float[] data, int offset) {
        int d = cache.dim();
        int best = 0;
        float bestDistance = Float.POSITIVE_INFINITY;
        for (int c = 0; c < clusters; c++) {
            float dist = kernels.squaredDistance(data, offset, centroids, c * d, d);
            if (dist < bestDistance) {
                bestDistance = dist;
                best = c;
            }
        }
        return best;
    }

    private void add(int cluster, int key) {
        if (members[cluster] == null) {
            members[cluster] = new int[8];
        } else if (memberCounts[cluster] == members[cluster].length) {
            members[cluster] = java.util.Arrays.copyOf(members[cluster], 2 * memberCounts[cluster]);
        }
        members[cluster][memberCounts[cluster]++] = key;
    }

    @Override
    public synchronized void keysAppended() {
        float[] row = new float[cache.dim()];
        for (int key = indexedKeys; key < cache.size(); key++) {
            cache.keyRows(kernels, key, 1, row, 0);
            add(nearest(row, 0), key);
        }
        indexedKeys = cache.size();
    }

    @Override
    public int[] select(float[] query, int queryOff, BudgetPlan plan) {
        int d = cache.dim();
        float[] scores = new float[clusters];
        kernels.dotRows(query, queryOff, centroids, d, 0, d, 0, clusters, scores, 0);
        int[] order = IntStream.range(0, clusters).toArray();
        TopK.sortBestFirst(order, clusters, scores, 0);
        int from = plan.middleStart();
        int to = plan.middleEnd();
        int[] chosen = new int[plan.chosen()];
        int count = 0;
        for (int cluster : order) {
            if (count == chosen.length) {
                break;
            }
            for (int r = 0; r < memberCounts[cluster] && count < chosen.length; r++) {
                int key = members[cluster][r];
                if (key >= from && key < to) {
                    chosen[count++] = key;
                }
            }
        }
        return Selections.assemble(plan, java.util.Arrays.copyOf(chosen, count));
    }

    @Override
    public long indexBytes() {
        return 4L * centroids.length + 4L * indexedKeys;
    }
}
