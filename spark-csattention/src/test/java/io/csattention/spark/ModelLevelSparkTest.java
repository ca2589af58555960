package io.csattention.spark;

import io.csattention.core.CSAttentionIndex;
import io.csattention.core.KeyValueCache;
import io.csattention.format.IndexedHead;
import io.csattention.model.LlamaModel;
import io.csattention.model.ModelFiles;
import io.csattention.model.Sampler;
import io.csattention.model.Session;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Model-level contexts of the bundled stories260K checkpoint (see src/test/resources/models/README.md) through Spark:
 * the prefill stage gives the same indexes as the Session's own tensors, and generation with a csattention budget of
 * every key gives full attention's greedy tokens.
 */
class ModelLevelSparkTest {

    static final long SEED = 11L;
    static final int CONTEXT_TOKENS = 96;
    static final int QUESTION_TOKENS = 5;
    static final int NEW_TOKENS = 8;
    static final Map<String, String> INDEX = Map.of("sparsity", "0.9", "centroids", "8");

    static final StructType CONTEXTS = new StructType()
            .add("context_id", DataTypes.StringType)
            .add("tokens", DataTypes.createArrayType(DataTypes.IntegerType));
    static final StructType QUESTIONS = new StructType()
            .add("question_id", DataTypes.IntegerType)
            .add("context_id", DataTypes.StringType)
            .add("tokens", DataTypes.createArrayType(DataTypes.IntegerType));

    static SparkSession spark;
    static String modelPath;
    static LlamaModel model;
    static Map<String, int[]> contextTokens = new HashMap<>();
    static Map<Integer, int[]> questionTokens = new HashMap<>();
    static Dataset<Row> contexts;
    static Dataset<Row> questions;

    @BeforeAll
    static void sample() throws IOException, URISyntaxException {
        spark = SharedSpark.get();
        modelPath = Path.of(ModelLevelSparkTest.class.getResource("/models/stories260K.bin").toURI()).toString();
        model = ModelFiles.load(Path.of(modelPath));
        System.out.println("ModelLevelSparkTest seed=" + SEED);
        SplittableRandom random = new SplittableRandom(SEED);
        List<Row> contextRows = new ArrayList<>();
        List<Row> questionRows = new ArrayList<>();
        for (int c = 0; c < 2; c++) {
            int[] tokens = new int[CONTEXT_TOKENS];
            tokens[0] = 1;
            for (int i = 1; i < tokens.length; i++) {
                tokens[i] = 2 + random.nextInt(model.config().vocabSize() - 2);
            }
            contextTokens.put("ctx-" + c, tokens);
            contextRows.add(RowFactory.create("ctx-" + c, boxed(tokens)));
            for (int q = 0; q < 2; q++) {
                int id = c * 10 + q;
                int[] question = random.ints(QUESTION_TOKENS, 2, model.config().vocabSize()).toArray();
                questionTokens.put(id, question);
                questionRows.add(RowFactory.create(id, "ctx-" + c, boxed(question)));
            }
        }
        contexts = spark.createDataFrame(contextRows, CONTEXTS);
        questions = spark.createDataFrame(questionRows, QUESTIONS);
    }

    @Test
    void modelLevelBuildGivesTheIndexesOfTheSessionsTensors(@TempDir Path dir) throws IOException {
        String index = dir.resolve("index").toString();
        long prefills = ModelPrefill.prefills();
        IndexSet.Manifest built = CSAttention.buildIndexes(contexts, modelPath, index, INDEX);
        assertEquals(2, ModelPrefill.prefills() - prefills, "model prefills: one per context");
        int heads = model.config().layers() * model.config().kvHeads();
        assertEquals(2 * heads, built.heads().size());
        assertEquals(2L, built.counters().get("contextsPrefilled"));
        CSAttentionOptions options = CSAttentionOptions.parse(INDEX);
        HadoopConf conf = new HadoopConf(spark.sparkContext().hadoopConfiguration());
        for (IndexSet.Entry e : built.heads()) {
            Session session = model.newSession();
            session.prefill(contextTokens.get(e.contextId()));
            CSAttentionIndex expected = CSAttentionIndex.build(options.kernels(),
                    session.cache(e.layer(), e.kvHead()).keyMatrix(),
                    session.prefillQueries(e.layer(), e.kvHead()), options.settings());
            IndexedHead head = IndexSet.parse(index, e, IndexSet.readFile(conf, index, e));
            CSAttentionIndex actual = head.index();
            String what = e.contextId() + "/" + e.layer() + "/" + e.kvHead();
            assertArrayEquals(session.cache(e.layer(), e.kvHead()).keyMatrix().data(), head.cache().keyMatrix().data(),
                    what);
            assertArrayEquals(session.cache(e.layer(), e.kvHead()).valueMatrix().data(),
                    head.cache().valueMatrix().data(), what);
            assertArrayEquals(expected.centroids(), actual.centroids(), what);
            assertArrayEquals(expected.listIds(), actual.listIds(), what);
            assertArrayEquals(expected.listScores(), actual.listScores(), what);
            assertArrayEquals(expected.floors(), actual.floors(), what);
        }
    }

    @Test
    void csattentionWithABudgetOfEveryKeyGeneratesFullAttentionsGreedyTokens() {
        Map<String, String> all = new HashMap<>(Map.of("sparsity", "0.0001", "centroids", "8",
                "maxNewTokens", Integer.toString(NEW_TOKENS)));
        long prefills = ModelPrefill.prefills();
        List<Row> sparse = CSAttention.generate(contexts, questions, modelPath, all).collectAsList();
        assertEquals(2, ModelPrefill.prefills() - prefills, "model prefills: one per context, not per question");
        all.put("attention", "full");
        List<Row> full = CSAttention.generate(contexts, questions, modelPath, all).collectAsList();
        assertEquals(4, sparse.size());
        Map<Long, List<Integer>> fullById = new HashMap<>();
        for (Row r : full) {
            fullById.put(r.getAs("question_id"), r.getList(r.fieldIndex("generated")));
        }
        for (Row r : sparse) {
            long id = r.getAs("question_id");
            List<Integer> generated = r.getList(r.fieldIndex("generated"));
            assertEquals("csattention", r.getAs("attention"));
            assertEquals(fullById.get(id), generated, "question " + id);
            assertArrayEquals(directGreedy(r.getAs("context_id"), questionTokens.get((int) id)),
                    generated.stream().mapToInt(Integer::intValue).toArray(), "question " + id);
            assertNull(r.getAs("text"));
            assertTrue(r.<Long>getAs("prefill_nanos") > 0);
        }
    }

    @Test
    void aQuestionAboutAnUnknownContextFailsNamingIt() {
        Dataset<Row> stray = spark.createDataFrame(List.of(RowFactory.create(99, "nowhere", boxed(new int[] {5}))),
                QUESTIONS);
        Exception e = assertThrows(Exception.class,
                () -> CSAttention.generate(contexts, stray, modelPath, Map.of()).collectAsList());
        Throwable cause = e;
        while (cause.getCause() != null) {
            cause = cause.getCause();
        }
        assertEquals("context_id of a question must name a row of the contexts table; context_id=nowhere",
                cause.getMessage());
    }

    /** The Spark option kvPrecision stores each context's K and V as asked: the answers of such a session, exactly. */
    @Test
    void kvPrecisionChoosesHowEachContextsKvCacheIsStored() {
        for (KeyValueCache.Precision kv : new KeyValueCache.Precision[]{KeyValueCache.Precision.F32,
                KeyValueCache.Precision.BF16}) {
            Map<String, String> options = Map.of("attention", "full", "kvPrecision", kv.id(),
                    "maxNewTokens", Integer.toString(NEW_TOKENS));
            for (Row r : CSAttention.generate(contexts, questions, modelPath, options).collectAsList()) {
                long id = r.getAs("question_id");
                assertArrayEquals(directGreedy(r.getAs("context_id"), questionTokens.get((int) id), kv),
                        r.<Integer>getList(r.fieldIndex("generated")).stream().mapToInt(Integer::intValue).toArray(),
                        kv.id() + " question " + id);
            }
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> CSAttention.generate(contexts, questions, modelPath, Map.of("kvPrecision", "int8")));
        assertEquals("kvPrecision must be one of f16, bf16, f32; kvPrecision=int8", e.getMessage());
    }

    /**
     * Option device places the context prefills: cpu is the default's answers, auto without a usable GPU falls back
     * to them, gpu without one fails the job in one line, and a bad value fails on the driver, before any job.
     */
    @Test
    void theDeviceOptionPlacesTheContextPrefills(@TempDir Path dir) {
        Map<String, String> full = Map.of("attention", "full", "maxNewTokens", "3");
        Map<Long, List<Integer>> plain = answers(CSAttention.generate(contexts, questions, modelPath, full));
        assertEquals(plain, answers(CSAttention.generate(contexts, questions, modelPath, with(full, "cpu"))));
        assertEquals("device must be one of auto, cpu, gpu; device=tpu", assertThrows(IllegalArgumentException.class,
                () -> CSAttention.generate(contexts, questions, modelPath, with(full, "tpu"))).getMessage());
        assertEquals("device must be one of auto, cpu, gpu; device=tpu", assertThrows(IllegalArgumentException.class,
                () -> CSAttention.buildIndexes(contexts, modelPath, dir.resolve("tpu").toString(),
                        with(INDEX, "tpu"))).getMessage());
        // local tasks have no gpu resource: GPU 0
        String reason = io.csattention.device.Backends.gpuUnavailableReason(0);
        org.junit.jupiter.api.Assumptions.assumeTrue(reason != null, "a usable GPU is present");
        assertEquals(plain, answers(CSAttention.generate(contexts, questions, modelPath, with(full, "auto"))));
        String needed = "device gpu needs a usable CUDA device: " + reason + "; device=gpu";
        assertFailedWith(needed, assertThrows(Exception.class,
                () -> CSAttention.generate(contexts, questions, modelPath, with(full, "gpu")).collectAsList()));
        assertFailedWith(needed, assertThrows(Exception.class,
                () -> CSAttention.buildIndexes(contexts, modelPath, dir.resolve("gpu").toString(),
                        with(INDEX, "gpu"))));
    }

    private static Map<String, String> with(Map<String, String> options, String device) {
        Map<String, String> out = new HashMap<>(options);
        out.put(CSAttentionOptions.DEVICE, device);
        return out;
    }

    private static Map<Long, List<Integer>> answers(Dataset<Row> answers) {
        Map<Long, List<Integer>> out = new HashMap<>();
        for (Row r : answers.collectAsList()) {
            out.put(r.getAs("question_id"), r.getList(r.fieldIndex("generated")));
        }
        return out;
    }

    /** The task's exception, somewhere in the chain of the driver's, has exactly {@code message}. */
    private static void assertFailedWith(String message, Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (message.equals(t.getMessage())) {
                return;
            }
        }
        throw new AssertionError("no cause with the message " + message, e);
    }

    /** The same continuation in one process: prefill the context, read the question, decode greedily, exactly. */
    private static int[] directGreedy(String contextId, int[] question) {
        return directGreedy(contextId, question, KeyValueCache.Precision.DEFAULT);
    }

    private static int[] directGreedy(String contextId, int[] question, KeyValueCache.Precision kv) {
        Session session = model.newSession(kv);
        float[] logits = session.prefill(contextTokens.get(contextId));
        for (int token : question) {
            logits = session.decode(token);
        }
        int[] out = new int[NEW_TOKENS];
        for (int i = 0; i < NEW_TOKENS; i++) {
            out[i] = Sampler.argmax(logits);
            if (i + 1 < NEW_TOKENS) {
                logits = session.decode(out[i]);
            }
        }
        return out;
    }

    private static List<Integer> boxed(int[] ids) {
        return Arrays.stream(ids).boxed().toList();
    }
}
