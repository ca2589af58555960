package io.csattention.jobs;

import io.csattention.core.CSAttentionSettings;
import io.csattention.spark.CSAttentionOptions;
import picocli.CommandLine.Option;

import java.util.Map;

/**
 * The index-build settings as flags, for every command that builds an index ({@code @Mixin BuildFlags build;}).
 * Each flag is one key of {@link CSAttentionOptions}, which alone turns keys into settings; unset flags leave the
 * key out, so the Spark configuration's defaults (or the core's) apply. Defaults are the core's constants.
 */
public final class BuildFlags {

    @Option(names = "--subspaces", paramLabel = "m", description = "Subspaces per head (must divide d; default: "
            + "d/16, or d/4 below 32).")
    String subspaces;

    @Option(names = "--centroids", paramLabel = "C", description = "k-means centroids per subspace (default: "
            + CSAttentionSettings.DEFAULT_CENTROIDS + ", at most the prefill queries).")
    String centroids;

    @Option(names = "--list-fraction", paramLabel = "alpha", description = "Each centroid keeps ceil(alpha*N) keys, "
            + "in (0, 1] (default: " + CSAttentionSettings.LIST_BUDGET_MULTIPLE + " times the budget's share, at "
            + "least 64 keys).")
    String listFraction;

    @Option(names = "--kmeans-iterations", description = "Bound on Lloyd iterations (default: "
            + CSAttentionSettings.DEFAULT_KMEANS_ITERATIONS + ").")
    String kmeansIterations;

    @Option(names = "--missing-score", description = "Estimate for keys absent from a chosen list: floor, "
            + "mean-below-floor or zero (default: mean-below-floor).")
    String missingScore;

    @Option(names = "--distance", description = "Centroid lookup: inner-product or l2 (default: l2).")
    String distance;

    /** Puts the given flags into {@code options} under their keys and records in {@code typed} which flag each was. */
    void into(Map<String, String> options, Map<String, String> typed) {
        Flags.put(options, typed, CSAttentionOptions.SUBSPACES, subspaces, "--subspaces");
        Flags.put(options, typed, CSAttentionOptions.CENTROIDS, centroids, "--centroids");
        Flags.put(options, typed, CSAttentionOptions.LIST_FRACTION, listFraction, "--list-fraction");
        Flags.put(options, typed, CSAttentionOptions.KMEANS_ITERATIONS, kmeansIterations, "--kmeans-iterations");
        Flags.put(options, typed, CSAttentionOptions.MISSING_SCORE, missingScore, "--missing-score");
        Flags.put(options, typed, CSAttentionOptions.DISTANCE, distance, "--distance");
    }
}
