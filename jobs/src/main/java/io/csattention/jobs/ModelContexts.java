package io.csattention.jobs;

import io.csattention.model.LlamaModel;
import io.csattention.model.Sampler;
import io.csattention.model.Session;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The demo's model-level sample: the bundled stories260K checkpoint (jobs/src/main/resources/models/README.md)
 * extracted from the jar, and contexts and questions the model writes itself (BOS, then seeded samples), as the
 * tables {@link io.csattention.spark.CSAttention#buildIndexes(Dataset, String, String, java.util.Map)} and
 * {@link io.csattention.spark.CSAttention#generate} read.
 */
final class ModelContexts {

    static final String RESOURCE = "/models/stories260K.bin";
    static final int BOS = 1;

    static final StructType CONTEXTS = new StructType()
            .add("context_id", DataTypes.StringType, false)
            .add("tokens", DataTypes.createArrayType(DataTypes.IntegerType, false), false);

    static final StructType QUESTIONS = new StructType()
            .add("question_id", DataTypes.LongType, false)
            .add("context_id", DataTypes.StringType, false)
            .add("tokens", DataTypes.createArrayType(DataTypes.IntegerType, false), false);

    private ModelContexts() {
    }

    /** Copies the bundled model out of the class path into {@code dir} (Spark executors read it from a file). */
    static Path extractBundledModel(Path dir) throws IOException {
        Path file = dir.resolve("stories260K.bin");
        try (InputStream in = ModelContexts.class.getResourceAsStream(RESOURCE)) {
            if (in == null) {
                throw new IOException("bundled model must be on the class path; resource=" + RESOURCE);
            }
            Files.copy(in, file);
        }
        return file;
    }

    /** {@code count} token sequences the model samples after BOS (temperature 1, seeded), BOS first. */
    static List<int[]> sample(LlamaModel model, int count, int tokens, long seed) {
        List<int[]> out = new ArrayList<>(count);
        for (int c = 0; c < count; c++) {
            Sampler sampler = new Sampler(1.0f, 1.0f, seed * 1_000_003L + c);
            Session session = model.newSession();
            int[] sequence = new int[tokens];
            sequence[0] = BOS;
            float[] logits = session.prefill(new int[] {BOS});
            for (int i = 1; i < tokens; i++) {
                sequence[i] = sampler.sample(logits);
                if (i + 1 < tokens) {
                    logits = session.decode(sequence[i]);
                }
            }
            out.add(sequence);
        }
        return out;
    }

    static Dataset<Row> contexts(SparkSession spark, List<int[]> contexts) {
        List<Row> rows = new ArrayList<>();
        for (int c = 0; c < contexts.size(); c++) {
            rows.add(RowFactory.create(contextId(c), contexts.get(c)));
        }
        return spark.createDataFrame(rows, CONTEXTS);
    }

    /** Questions of each context: rows (question_id, context_id, tokens), question ids numbered per context. */
    static Dataset<Row> questions(SparkSession spark, List<List<int[]>> perContext) {
        List<Row> rows = new ArrayList<>();
        for (int c = 0; c < perContext.size(); c++) {
            for (int q = 0; q < perContext.get(c).size(); q++) {
                rows.add(RowFactory.create((long) c * 1000 + q, contextId(c), perContext.get(c).get(q)));
            }
        }
        return spark.createDataFrame(rows, QUESTIONS);
    }

    static String contextId(int c) {
        return "story-" + c;
    }
}
