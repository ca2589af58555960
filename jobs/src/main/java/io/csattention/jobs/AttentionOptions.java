package io.csattention.jobs;

import io.csattention.core.CSAttentionSettings;
import picocli.CommandLine.Option;

/** {@code --sparsity} and the CSAttention knobs of the model commands; 0 or negative means automatic. */
final class AttentionOptions {

    @Option(names = "--sparsity", defaultValue = "0.95", description = "share of keys not attended (default 0.95)")
    double sparsity;

    @Option(names = "--subspaces", defaultValue = "0", description = "csattention subspaces m (0 = automatic)")
    int subspaces;

    @Option(names = "--centroids", defaultValue = "0", description = "csattention centroids C (0 = automatic)")
    int centroids;

    @Option(names = "--list-fraction", defaultValue = "0", description = "csattention list fraction (0 = automatic)")
    double listFraction;

    @Option(names = "--sink", defaultValue = "-1", description = "forced leading keys (-1 = automatic)")
    int sink;

    @Option(names = "--window", defaultValue = "-1", description = "forced trailing keys (-1 = automatic)")
    int window;

    @Option(names = "--rescore-factor", defaultValue = "-1",
            description = "csattention exact re-scoring factor (-1 = the default)")
    double rescoreFactor;

    CSAttentionSettings settings() {
        CSAttentionSettings s = CSAttentionSettings.defaults().withSparsity(sparsity).withSubspaces(subspaces)
                .withCentroids(centroids).withListFraction(listFraction).withSink(sink).withWindow(window);
        return rescoreFactor >= 0 ? s.withRescoreFactor(rescoreFactor) : s;
    }
}
