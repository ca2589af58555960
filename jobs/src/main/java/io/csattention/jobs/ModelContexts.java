package io.csattention.jobs;

import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;

import java.util.Optional;

/**
 * Hook for the model-level part of the demo: contexts from the bundled stories260K model (token ids through the
 * Llama forward pass, giving each layer's K, V and prefill Q as a contexts table of the same columns as the
 * tensor-level one). The model runtime (io.csattention.model, issue 3, branch {@code model}) is not on this branch
 * yet. Once merged, the body is, per context on the executors (spark.range over contexts, flatMap): load the model
 * ({@code ModelFiles}), {@code Session s = model.newSession(); s.prefill(tokens);} then for every layer l and KV
 * head h one row (context_id, l, h, head_dim, {@code s.cache(l, h).keyMatrix()}, {@code valueMatrix()},
 * {@code s.prefillQueries(l, h)}), and the demo builds and decodes it like the tensor-level set.
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
