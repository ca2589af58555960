package io.csattention.core;

import java.io.Serializable;

/**
 * Every knob of index build and decode, immutable and serializable so that Spark can ship it. Zero (for sink and
 * window a negative value) means "choose from the data's shape"; {@link #resolve} turns those into concrete values.
 *
 * @param sparsity          share of keys not attended, in (0, 1)
 * @param subspaces         m, the number of contiguous subspaces the head dimension is split into (must divide d)
 * @param centroids         C, k-means centroids per subspace (reduced to the number of prefill queries when fewer)
 * @param listFraction      alpha, each centroid keeps {@code L = ceil(alpha * N)} keys
 * @param sink              forced leading keys, negative for automatic
 * @param window            forced trailing keys, negative for automatic
 * @param seed              seed of k-means++ and of the prefill-query sample
 * @param kmeansIterations  bound on Lloyd iterations
 * @param kmeansSamples     at most this many prefill queries train k-means (a seeded sample)
 * @param distance          how a decode query picks its centroid per subspace
 * @param missingScore      what a key absent from a chosen list contributes
 * @param rescoreFactor     candidates re-scored with {@code q . k} over the int8 key sketch, as a multiple of the chosen keys; 0 takes the accumulated
 *                          scores as they are (the literal method)
 */
public record CSAttentionSettings(
        double sparsity,
        int subspaces,
        int centroids,
        double listFraction,
        int sink,
        int window,
        long seed,
        int kmeansIterations,
        int kmeansSamples,
        CentroidDistance distance,
        MissingScore missingScore,
        double rescoreFactor) implements Serializable {

    public static final double DEFAULT_SPARSITY = 0.95;
    public static final long DEFAULT_SEED = 42L;
    public static final int DEFAULT_KMEANS_ITERATIONS = 12;
    public static final int DEFAULT_KMEANS_SAMPLES = 16384;
    /** Measured on the synthetic 32K head: 128 centroids keep recall within 0.015 of 256 at half the index. */
    public static final int DEFAULT_CENTROIDS = 128;
    /**
     * Measured on the synthetic heads at 95% (C = 128, lists 2.4 x the budget, int8 re-scoring): recall at 3 / 4 / 5 /
     * 6 x is 0.849 / 0.909 / 0.933 / 0.941 at 128K; 5 x keeps recall above 0.91 from 8K to 128K (4 x fell to 0.897 at
     * 64K) for about 5-10% more decode time. 5 x chosen is 25% of the keys re-scored.
     */
    public static final double DEFAULT_RESCORE_FACTOR = 5.0;
    /** Automatic list length as a multiple of the budget; see {@link #resolveListFraction}. */
    public static final double LIST_BUDGET_MULTIPLE = 2.4;

    public CSAttentionSettings {
        Check.openUnit(sparsity, "sparsity");
        Check.that(subspaces >= 0, "subspaces must be > 0 or 0 for automatic", "subspaces", subspaces);
        Check.that(centroids >= 0, "centroids must be > 0 or 0 for automatic", "centroids", centroids);
        Check.that(listFraction <= 1, "list-fraction must be in (0, 1] or 0 for automatic", "list-fraction",
                listFraction);
        // below 1 the method would attend fewer keys than the budget
        Check.that(rescoreFactor == 0 || rescoreFactor >= 1,
                "rescore-factor must be 0 (no re-scoring) or >= 1", "rescore-factor", rescoreFactor);
        Check.that(kmeansIterations > 0, "kmeans-iterations must be > 0", "kmeans-iterations", kmeansIterations);
        Check.that(kmeansSamples > 0, "kmeans-samples must be > 0", "kmeans-samples", kmeansSamples);
        java.util.Objects.requireNonNull(distance, "distance");
        java.util.Objects.requireNonNull(missingScore, "missingScore");
    }

    /** The defaults: every shape-dependent value automatic. */
    public static CSAttentionSettings defaults() {
        return new CSAttentionSettings(DEFAULT_SPARSITY, 0, 0, 0, -1, -1, DEFAULT_SEED, DEFAULT_KMEANS_ITERATIONS,
                DEFAULT_KMEANS_SAMPLES,
                CentroidDistance.L2, MissingScore.MEAN_BELOW_FLOOR, DEFAULT_RESCORE_FACTOR);
    }

    /**
     * The settings of the method as first described: inner-product lookup, the floor as the estimate of absent keys,
     * no exact re-scoring, 256 centroids.
     */
    public static CSAttentionSettings literal() {
        return defaults().withRescoreFactor(0).withDistance(CentroidDistance.INNER_PRODUCT)
                .withMissingScore(MissingScore.FLOOR).withCentroids(256);
    }

    public CSAttentionSettings withSparsity(double v) {
        return new CSAttentionSettings(v, subspaces, centroids, listFraction, sink, window, seed, kmeansIterations,
                kmeansSamples, distance, missingScore, rescoreFactor);
    }

    public CSAttentionSettings withSubspaces(int v) {
        return new CSAttentionSettings(sparsity, v, centroids, listFraction, sink, window, seed, kmeansIterations,
                kmeansSamples, distance, missingScore, rescoreFactor);
    }

    public CSAttentionSettings withCentroids(int v) {
        return new CSAttentionSettings(sparsity, subspaces, v, listFraction, sink, window, seed, kmeansIterations,
                kmeansSamples, distance, missingScore, rescoreFactor);
    }

    public CSAttentionSettings withListFraction(double v) {
        return new CSAttentionSettings(sparsity, subspaces, centroids, v, sink, window, seed, kmeansIterations,
                kmeansSamples, distance, missingScore, rescoreFactor);
    }

    public CSAttentionSettings withSink(int v) {
        return new CSAttentionSettings(sparsity, subspaces, centroids, listFraction, v, window, seed, kmeansIterations,
                kmeansSamples, distance, missingScore, rescoreFactor);
    }

    public CSAttentionSettings withWindow(int v) {
        return new CSAttentionSettings(sparsity, subspaces, centroids, listFraction, sink, v, seed, kmeansIterations,
                kmeansSamples, distance, missingScore, rescoreFactor);
    }

    public CSAttentionSettings withSeed(long v) {
        return new CSAttentionSettings(sparsity, subspaces, centroids, listFraction, sink, window, v, kmeansIterations,
                kmeansSamples, distance, missingScore, rescoreFactor);
    }

    public CSAttentionSettings withKmeansIterations(int v) {
        return new CSAttentionSettings(sparsity, subspaces, centroids, listFraction, sink, window, seed, v,
                kmeansSamples, distance, missingScore, rescoreFactor);
    }

    public CSAttentionSettings withKmeansSamples(int v) {
        return new CSAttentionSettings(sparsity, subspaces, centroids, listFraction, sink, window, seed,
                kmeansIterations, v, distance, missingScore, rescoreFactor);
    }

    public CSAttentionSettings withDistance(CentroidDistance v) {
        return new CSAttentionSettings(sparsity, subspaces, centroids, listFraction, sink, window, seed,
                kmeansIterations, kmeansSamples, v, missingScore, rescoreFactor);
    }

    public CSAttentionSettings withMissingScore(MissingScore v) {
        return new CSAttentionSettings(sparsity, subspaces, centroids, listFraction, sink, window, seed,
                kmeansIterations, kmeansSamples, distance, v, rescoreFactor);
    }

    public CSAttentionSettings withRescoreFactor(double v) {
        return new CSAttentionSettings(sparsity, subspaces, centroids, listFraction, sink, window, seed,
                kmeansIterations, kmeansSamples, distance, missingScore, v);
    }

    /** The budget plan for a cache of {@code keys} keys under these settings. */
    public BudgetPlan plan(int keys) {
        return BudgetPlan.of(keys, sparsity, sink, window);
    }

    /**
     * m for head dimension d: the given value, or 16-dimensional subspaces for d >= 32 and 4-dimensional ones below.
     */
    public int resolveSubspaces(int d) {
        int m = subspaces > 0 ? subspaces : Math.max(1, d >= 32 ? d / 16 : d / 4);
        Check.that(d % m == 0, "subspaces must divide the head dimension " + d, "subspaces", m);
        return m;
    }

    /** C for a prefill of {@code prefillRows} queries: the given value or 128, at most the number of queries. */
    public int resolveCentroids(int prefillRows) {
        int c = centroids > 0 ? centroids : DEFAULT_CENTROIDS;
        return Math.max(1, Math.min(c, prefillRows));
    }

    /**
     * alpha for a context of n keys: the given value, or the share that keeps every list 2.4 times the budget of this
     * sparsity and no shorter than 64 keys. Measured at 128K and 95% (C = 128, 4 x re-scoring): recall 0.895 at twice
     * the budget, 0.909 at 2.4 times.
     */
    public double resolveListFraction(int n) {
        if (listFraction > 0) {
            return listFraction;
        }
        double listsOfBudget = LIST_BUDGET_MULTIPLE * (1 - sparsity);
        return Math.min(1.0, Math.max(listsOfBudget, 64.0 / Math.max(1, n)));
    }
}
