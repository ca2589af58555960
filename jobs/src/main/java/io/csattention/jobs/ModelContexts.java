package io.csattention.jobs;

import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;

import java.util.Optional;

/**
 * Hook for the model-level part of the demo: contexts from the bundled stories260K model (token ids through the
 * Llama forward pass, giving each layer's K, V and prefill Q as a contexts table of the same columns as the
 * tensor-level one). The model runtime (io.csattention.model, issue 3) is not on this branch yet; when it is, this
 * class runs its prefill and the demo builds and decodes the result like the tensor-level set.
 */
final class ModelContexts {

    static final String PENDING = "model-level contexts (stories260K): skipped, the model runtime "
            + "(io.csattention.model, issue 3) is not on this branch yet";

    private ModelContexts() {
    }

    /** The bundled model's contexts table, or empty while the model runtime is missing. */
    static Optional<Dataset<Row>> fromBundledModel(SparkSession spark, int contexts, int tokens, long seed) {
        return Optional.empty();
    }
}
