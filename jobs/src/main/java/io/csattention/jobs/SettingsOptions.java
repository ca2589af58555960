package io.csattention.jobs;

import io.csattention.core.CSAttentionSettings;
import io.csattention.core.Check;
import io.csattention.core.CentroidDistance;
import io.csattention.core.MissingScore;
import picocli.CommandLine.Option;

/**
 * The CSAttention knobs shared by every command; unset options keep {@link CSAttentionSettings#defaults()}. The
 * index seed is the command's own {@code --seed} where the command has no other seed.
 */
public final class SettingsOptions {

    @Option(names = "--sparsity", description = "Share of keys not attended, in (0, 1) (default: ${DEFAULT-VALUE}).",
            defaultValue = "0.95")
    double sparsity;

    @Option(names = "--subspaces", description = "m: subspaces per head (must divide d; default: d/16, or d/4 below 32).")
    Integer subspaces;

    @Option(names = "--centroids", description = "C: k-means centroids per subspace (default: 128, at most the prefill queries).")
    Integer centroids;

    @Option(names = "--list-fraction", description = "alpha: each centroid keeps ceil(alpha*N) keys (default: automatic).")
    Double listFraction;

    @Option(names = "--sink", description = "Leading keys always attended (default: min(4, budget/8)).")
    Integer sink;

    @Option(names = "--window", description = "Trailing keys always attended (default: min(64, budget/8)).")
    Integer window;

    @Option(names = "--rescore-factor", description = "Candidates re-scored with q . k (over the int8 key sketch), as a multiple of the chosen keys; 0 = the literal method (default: 5).")
    Double rescoreFactor;

    @Option(names = "--missing-score", description = "Estimate for keys absent from a chosen list: ${COMPLETION-CANDIDATES} (default: mean_below_floor).")
    MissingScore missingScore;

    @Option(names = "--distance", description = "Centroid lookup: ${COMPLETION-CANDIDATES} (default: l2).")
    CentroidDistance distance;

    @Option(names = "--kmeans-iterations", description = "Bound on Lloyd iterations (default: 12).")
    Integer kmeansIterations;

    /** The settings these options describe; validation errors name the flag. */
    public CSAttentionSettings settings() {
        CSAttentionSettings s = CSAttentionSettings.defaults().withSparsity(sparsity);
        if (subspaces != null) {
            s = s.withSubspaces(Check.positive(subspaces, "--subspaces"));
        }
        if (centroids != null) {
            s = s.withCentroids(Check.positive(centroids, "--centroids"));
        }
        if (listFraction != null) {
            Check.that(listFraction > 0 && listFraction <= 1, "--list-fraction must be in (0, 1]",
                    "--list-fraction", listFraction);
            s = s.withListFraction(listFraction);
        }
        if (sink != null) {
            s = s.withSink(Check.nonNegative(sink, "--sink"));
        }
        if (window != null) {
            s = s.withWindow(Check.nonNegative(window, "--window"));
        }
        if (rescoreFactor != null) {
            Check.that(rescoreFactor == 0 || rescoreFactor >= 1, "--rescore-factor must be 0 (no re-scoring) or >= 1",
                    "--rescore-factor", rescoreFactor);
            s = s.withRescoreFactor(rescoreFactor);
        }
        if (missingScore != null) {
            s = s.withMissingScore(missingScore);
        }
        if (distance != null) {
            s = s.withDistance(distance);
        }
        if (kmeansIterations != null) {
            s = s.withKmeansIterations(Check.positive(kmeansIterations, "--kmeans-iterations"));
        }
        return s;
    }
}
