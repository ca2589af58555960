package io.csattention.spark;

import io.csattention.core.BlockDecoder;
import io.csattention.core.CSAttentionIndex;
import io.csattention.core.CSAttentionSelector;
import io.csattention.core.CSAttentionSettings;
import io.csattention.core.FloatMatrix;
import io.csattention.core.KeyValueCache;
import io.csattention.core.Rope;
import io.csattention.core.RopeInfo;
import io.csattention.eval.SyntheticContext;
import io.csattention.kernel.Kernels;
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
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The shapes users run, through Spark: a grouped-query head set (4 query heads per KV head) and a 32K-key RoPE head
 * with slow bands, built through the DataSource write and decoded through the Java API, the SQL function and the
 * DataSource read, against the library and against exact attention computed here in float64.
 */
class GqaRopeSparkTest {

    private static final long SEED = 20261201L;
    private static final int GROUP = 4;
    private static final int KV_HEADS = 2;
    private static final int KEYS = 4096;
    private static final int DIM = 64;
    private static final int PER_QUERY_HEAD = 6;
    private static final int TOPICS = 16;
    private static final Map<String, String> OPTIONS = Map.of("sparsity", "0.95", "withSelected", "true");

    private static final StructType CONTEXTS = new StructType()
            .add("context_id", DataTypes.StringType)
            .add("layer", DataTypes.IntegerType)
            .add("kv_head", DataTypes.IntegerType)
            .add("chunk", DataTypes.IntegerType)
            .add("head_dim", DataTypes.IntegerType)
            .add("keys", DataTypes.createArrayType(DataTypes.FloatType))
            .add("values", DataTypes.createArrayType(DataTypes.FloatType))
            .add("prefill_queries", DataTypes.createArrayType(DataTypes.FloatType))
            .add("prefill_positions", DataTypes.createArrayType(DataTypes.LongType));

    private static final StructType QUERIES = new StructType()
            .add("query_id", DataTypes.LongType)
            .add("context_id", DataTypes.StringType)
            .add("layer", DataTypes.IntegerType)
            .add("head", DataTypes.IntegerType)
            .add("query", DataTypes.createArrayType(DataTypes.FloatType))
            .add("position", DataTypes.LongType);

    static SparkSession spark;
    @TempDir
    static Path dir;
    static String gqaIndex;
    static FloatMatrix[] keys = new FloatMatrix[KV_HEADS];
    static FloatMatrix[] values = new FloatMatrix[KV_HEADS];
    static FloatMatrix[] prefill = new FloatMatrix[KV_HEADS];
    /** Query rows in table order: query head, vector. */
    static List<Object[]> gqaQueries = new ArrayList<>();

    @BeforeAll
    static void build() {
        System.out.println("GqaRopeSparkTest seed=" + SEED);
        spark = SharedSpark.get();
        SplittableRandom random = new SplittableRandom(SEED);
        List<Row> rows = new ArrayList<>();
        FloatMatrix[] centers = new FloatMatrix[KV_HEADS];
        for (int h = 0; h < KV_HEADS; h++) {
            // each KV head has its own topics: a key direction and a value per topic, so that attention is
            // concentrated on one topic's keys and reading the wrong KV head gives another output
            centers[h] = gaussian(random, TOPICS, 0.5);
            FloatMatrix topicValues = gaussian(random, TOPICS, 1.0);
            int[] topic = random.ints(KEYS, 0, TOPICS).toArray();
            keys[h] = around(random, centers[h], topic, 1.0, 0.25);
            values[h] = around(random, topicValues, topic, 1.0, 0.3);
            prefill[h] = around(random, centers[h], random.ints(KEYS / 2, 0, TOPICS).toArray(), 3.0, 0.3);
            rows.add(RowFactory.create("doc", 0, h, 0, DIM, TestTensors.floats(keys[h]),
                    TestTensors.floats(values[h]), TestTensors.floats(prefill[h]), null));
        }
        Dataset<Row> contexts = spark.createDataFrame(rows, CONTEXTS).drop("prefill_positions");
        gqaIndex = dir.resolve("gqa").toString();
        contexts.write().format(CSAttentionDataSource.NAME).options(OPTIONS)
                .option(CSAttentionOptions.QUERY_HEADS_PER_KV_HEAD, Integer.toString(GROUP)).mode("overwrite")
                .save(gqaIndex);
        // query heads interleaved, so that a decode that regroups rows by head must restore their order
        long id = 0;
        for (int i = 0; i < PER_QUERY_HEAD; i++) {
            for (int head = GROUP * KV_HEADS - 1; head >= 0; head--) {
                FloatMatrix q = around(random, centers[head / GROUP], new int[] {random.nextInt(TOPICS)}, 3.0, 0.3);
                gqaQueries.add(new Object[] {id++, head, q.data()});
            }
        }
    }

    private static FloatMatrix gaussian(SplittableRandom r, int rows, double scale) {
        float[] data = new float[rows * DIM];
        for (int i = 0; i < data.length; i++) {
            data[i] = (float) (r.nextGaussian() * scale);
        }
        return new FloatMatrix(rows, DIM, data);
    }

    /** Row i is {@code scale * centers[topic[i]]} plus Gaussian noise of {@code noise}. */
    private static FloatMatrix around(SplittableRandom r, FloatMatrix centers, int[] topic, double scale,
                                      double noise) {
        float[] data = new float[topic.length * DIM];
        for (int i = 0; i < topic.length; i++) {
            for (int j = 0; j < DIM; j++) {
                data[i * DIM + j] = (float) (scale * centers.data()[topic[i] * DIM + j] + noise * r.nextGaussian());
            }
        }
        return new FloatMatrix(topic.length, DIM, data);
    }

    private Dataset<Row> gqaQueriesTable() {
        List<Row> rows = new ArrayList<>();
        for (Object[] q : gqaQueries) {
            rows.add(RowFactory.create(q[0], "doc", 0, q[1], q[2], null));
        }
        return spark.createDataFrame(rows, QUERIES).drop("position");
    }

    /** The library's decode of one query on KV head {@code kvHead}, built with the Spark build's settings. */
    private static final Map<Integer, CSAttentionSelector> LIBRARY = new HashMap<>();

    private static synchronized float[] library(int kvHead, float[] query) {
        CSAttentionSettings settings = CSAttentionOptions.parse(OPTIONS).settings();
        KeyValueCache cache = KeyValueCache.of(keys[kvHead], values[kvHead]);
        CSAttentionSelector selector = LIBRARY.computeIfAbsent(kvHead, h -> new CSAttentionSelector(
                Kernels.preferred(), CSAttentionIndex.build(Kernels.preferred(), keys[h], prefill[h], settings), cache,
                settings.rescoreFactor()));
        float[] out = new float[DIM];
        BlockDecoder.decodeBlock(Kernels.preferred(), cache, selector, settings.plan(KEYS), query, 0, 1, null, out);
        return out;
    }

    @Test
    void everyFrontDoorTakesTheQueryHeadAndReadsTheRecordedKvHead() throws IOException {
        String queries = dir.resolve("gqa-queries.parquet").toString();
        gqaQueriesTable().coalesce(1).write().parquet(queries);
        Dataset<Row> input = spark.read().parquet(queries);
        List<Row> job = CSAttention.decode(input, gqaIndex, Map.of("withSelected", "true")).collectAsList();
        spark.read().parquet(queries).createOrReplaceTempView("gqa_queries");
        List<Row> sql = spark.sql("SELECT query_id, head, csattention_decode('" + gqaIndex
                + "', context_id, layer, head, query) AS output FROM gqa_queries").collectAsList();
        // the DataSource read over the same table written as several files (its rows come in file-name order)
        String split = dir.resolve("gqa-queries-split.parquet").toString();
        gqaQueriesTable().repartition(3).sortWithinPartitions("query_id").write().parquet(split);
        List<Row> splitRows = new ArrayList<>();
        String[] splitFiles = spark.read().parquet(split).inputFiles();
        java.util.Arrays.sort(splitFiles);
        assertTrue(splitFiles.length >= 2, "the queries are in several files: " + splitFiles.length);
        for (String f : splitFiles) {
            splitRows.addAll(spark.read().parquet(f).collectAsList());
        }
        List<Row> source = spark.read().format(CSAttentionDataSource.NAME).option("queries", split)
                .option("withSelected", "true").load(gqaIndex).collectAsList();
        assertEquals(gqaQueries.size(), job.size());
        assertEquals(gqaQueries.size(), sql.size());
        assertEquals(gqaQueries.size(), source.size());
        Map<Long, float[]> byId = new HashMap<>();
        for (int i = 0; i < source.size(); i++) {
            Row r = source.get(i);
            // row order of the DataSource read: the queries files' rows, file by file, without orderBy
            assertEquals((Long) splitRows.get(i).getAs("query_id"), r.getAs("query_id"), "DataSource row " + i);
            assertEquals((int) splitRows.get(i).getAs("head") / GROUP, (int) r.getAs("kv_head"));
            byId.put(r.getAs("query_id"), floats(r.getList(r.fieldIndex("output"))));
        }
        double worstLibrary = 0;
        double errorRight = 0;
        double errorWrong = 0;
        double errorLibrary = 0;
        for (int i = 0; i < gqaQueries.size(); i++) {
            Object[] q = gqaQueries.get(i);
            int head = (int) q[1];
            float[] vector = (float[]) q[2];
            Row j = job.get(i);
            Row s = sql.get(i);
            // row order of both front doors, without orderBy
            assertEquals(q[0], j.getAs("query_id"), "decode job row " + i);
            assertEquals(q[0], s.getAs("query_id"), "SQL row " + i);
            assertEquals(head / GROUP, (int) j.getAs("kv_head"));
            float[] expected = library(head / GROUP, vector);
            worstLibrary = Math.max(worstLibrary, maxAbsDiff(expected, floats(j.getList(j.fieldIndex("output")))));
            worstLibrary = Math.max(worstLibrary, maxAbsDiff(expected, floats(s.getList(s.fieldIndex("output")))));
            worstLibrary = Math.max(worstLibrary, maxAbsDiff(expected, byId.get((Long) q[0])));
            double[] exact = exactAttention(keys[head / GROUP], values[head / GROUP], vector);
            errorRight += relativeError(floats(j.getList(j.fieldIndex("output"))), exact);
            errorLibrary += relativeError(expected, exact);
            errorWrong += relativeError(floats(j.getList(j.fieldIndex("output"))),
                    exactAttention(keys[1 - head / GROUP], values[1 - head / GROUP], vector));
        }
        errorRight /= gqaQueries.size();
        errorWrong /= gqaQueries.size();
        errorLibrary /= gqaQueries.size();
        System.out.printf("GQA: max |spark - library| %.3g, error vs exact on the right KV head %.4f, on the other "
                + "one %.4f%n", worstLibrary, errorRight, errorWrong);
        assertTrue(worstLibrary <= 1e-6, "max abs difference to the library " + worstLibrary);
        // measured 0.086 on the right KV head (the library's too) and 3.2 on the other one
        assertTrue(errorRight <= errorLibrary + 1e-6, "error " + errorRight + " above the library's " + errorLibrary);
        assertTrue(errorRight < 0.15, "error vs exact attention on the right KV head " + errorRight);
        assertTrue(errorWrong > 5 * errorRight, "the other KV head gives a different output " + errorWrong);
    }

    @Test
    void theDataSourceShowsWhichQueryHeadsReadEachKvHead() {
        List<Row> rows = CSAttention.describe(spark, gqaIndex).orderBy("kv_head").collectAsList();
        assertEquals(KV_HEADS, rows.size());
        for (int h = 0; h < KV_HEADS; h++) {
            assertEquals(GROUP, (int) rows.get(h).getAs("query_heads_per_kv_head"));
            assertEquals(h * GROUP, (int) rows.get(h).getAs("first_query_head"));
            assertEquals(2, (int) rows.get(h).getAs("format_version"));
            assertTrue(rows.get(h).isNullAt(rows.get(h).fieldIndex("rope_base")));
        }
    }

    @Test
    void aDisagreeingGroupSizeOrAnUnknownQueryHeadIsOneLine() throws IOException {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> CSAttention.decode(gqaQueriesTable(), gqaIndex, Map.of("queryHeadsPerKvHead", "2")));
        assertEquals("queryHeadsPerKvHead must be the group size the index set " + gqaIndex + " recorded, 4 "
                + "(context_id=doc, layer=0); queryHeadsPerKvHead=2", e.getMessage());
        List<Row> bad = List.of(RowFactory.create(99L, "doc", 0, GROUP * KV_HEADS, new float[DIM], null));
        Dataset<Row> table = spark.createDataFrame(bad, QUERIES).drop("position");
        Exception failed = assertThrows(Exception.class,
                () -> CSAttention.decode(table, gqaIndex, Map.of()).collectAsList());
        assertEquals("head must be a query head of context_id=doc layer=0, in [0, 8) (2 KV heads x 4 query heads "
                + "per KV head); head=8 (query_id=99)", QueryCheck.badRow(failed));
        String badFile = dir.resolve("bad-head.parquet").toString();
        table.write().parquet(badFile);
        Exception throughSource = assertThrows(Exception.class, () -> spark.read().format(CSAttentionDataSource.NAME)
                .option("queries", badFile).load(gqaIndex).collectAsList());
        assertEquals("head must be a query head of context_id=doc layer=0, in [0, 8) (2 KV heads x 4 query heads "
                + "per KV head); head=8 (query_id=99)", QueryCheck.badRow(throughSource));
        IllegalArgumentException groupThroughSource = assertThrows(IllegalArgumentException.class,
                () -> spark.read().format(CSAttentionDataSource.NAME).option("queries", badFile)
                        .option("queryHeadsPerKvHead", "2").load(gqaIndex).collectAsList());
        assertEquals("queryHeadsPerKvHead must be the group size the index set " + gqaIndex + " recorded, 4 "
                + "(context_id=doc, layer=0); queryHeadsPerKvHead=2", groupThroughSource.getMessage());
        List<Row> negative = List.of(RowFactory.create(98L, "doc", 0, 1, new float[DIM], -3L));
        Exception position = assertThrows(Exception.class, () -> CSAttention.decode(
                spark.createDataFrame(negative, QUERIES), gqaIndex, Map.of()).collectAsList());
        assertEquals("position must be >= 0 (query_id=98); position=-3", QueryCheck.badRow(position));
        List<Row> nullContext = List.of(RowFactory.create(null, 0, 0, 0, DIM, TestTensors.floats(keys[0]),
                TestTensors.floats(values[0]), TestTensors.floats(prefill[0]), null));
        Exception nullId = assertThrows(Exception.class, () -> spark.createDataFrame(nullContext, CONTEXTS)
                .drop("prefill_positions").write().format(CSAttentionDataSource.NAME).mode("overwrite")
                .save(dir.resolve("null-context").toString()));
        assertEquals("context_id, layer and kv_head must not be null; context_id=null, layer=0, kv_head=0",
                rootMessage(nullId));
        IllegalArgumentException rescore = assertThrows(IllegalArgumentException.class,
                () -> CSAttention.decode(gqaQueriesTable(), gqaIndex, Map.of("rescoreFactor", "0.5")));
        assertEquals("rescoreFactor must be 0 (no re-scoring) or >= 1; rescoreFactor=0.5", rescore.getMessage());
    }

    @Test
    void aRopeIndexBuiltThroughSparkSelectsWhatTheLibrarySelectsAt32k() throws IOException {
        int tokens = 32_768;
        int d = 128;
        SyntheticContext.Spec spec = SyntheticContext.Spec.of(tokens, d, 8, SEED);
        long t0 = System.nanoTime();
        SyntheticContext.Head head = SyntheticContext.generate(spec);
        long t1 = System.nanoTime();
        List<Row> rows = new ArrayList<>();
        int chunk = 8192;
        for (int from = 0, c = 0; from < tokens; from += chunk, c++) {
            int to = from + chunk;
            rows.add(RowFactory.create("long", 0, 0, c, d, TestTensors.floats(head.keys().rows(from, to)),
                    TestTensors.floats(head.values().rows(from, to)),
                    TestTensors.floats(head.prefillQueries().rows(from, to)),
                    java.util.Arrays.copyOfRange(head.prefillQueryPositions(), from, to)));
        }
        String index = dir.resolve("rope").toString();
        spark.createDataFrame(rows, CONTEXTS).write().format(CSAttentionDataSource.NAME).option("ropeBase", "500000")
                .option("ropeStyle", "half").mode("overwrite").save(index);
        long t2 = System.nanoTime();

        CSAttentionSettings settings = CSAttentionSettings.defaults();
        RopeInfo rope = new RopeInfo(spec.ropeBase(), Rope.Style.HALF, head.prefillQueryPositions(), tokens,
                RopeInfo.DEFAULT_DECODE_SPAN);
        KeyValueCache cache = KeyValueCache.of(head.keys(), head.values());
        CSAttentionSelector library = new CSAttentionSelector(Kernels.preferred(),
                CSAttentionIndex.build(Kernels.preferred(), head.keys(), head.prefillQueries(), settings, rope), cache,
                settings.rescoreFactor());
        BlockDecoder.Result expected;
        try (BlockDecoder decoder = BlockDecoder.withThreads(Kernels.preferred(), 1)) {
            expected = decoder.decode(cache, library, settings.plan(tokens), head.queries(), head.queryPositions());
        }
        long t3 = System.nanoTime();

        List<Row> queries = new ArrayList<>();
        for (int i = 0; i < head.queries().rows(); i++) {
            queries.add(RowFactory.create((long) i, "long", 0, 0, TestTensors.floats(head.queries().rows(i, i + 1)),
                    head.queryPositions()[i]));
        }
        List<Row> decoded = CSAttention.decode(spark.createDataFrame(queries, QUERIES), index,
                Map.of("withSelected", "true")).collectAsList();
        long t4 = System.nanoTime();
        System.out.printf("RoPE 32K timing: generate %.1f s, Spark build %.1f s, library build %.1f s, Spark decode %.1f s%n",
                (t1 - t0) / 1e9, (t2 - t1) / 1e9, (t3 - t2) / 1e9, (t4 - t3) / 1e9);
        long same = 0;
        long total = 0;
        for (int i = 0; i < decoded.size(); i++) {
            Row r = decoded.get(i);
            assertEquals((long) i, (long) r.getAs("query_id"));
            Set<Integer> spark = new HashSet<>(r.getList(r.fieldIndex("selected_ids")));
            for (int id : expected.selections()[i]) {
                if (id >= 0) {
                    total++;
                    same += spark.contains(id) ? 1 : 0;
                }
            }
        }
        double recall = (double) same / total;
        System.out.printf("RoPE 32K: recall of the library's selection by the Spark-built index %.4f%n", recall);
        assertTrue(recall >= 0.999, "recall of the library's selection " + recall);
        Row described = CSAttention.describe(spark, index).collectAsList().get(0);
        assertEquals(500000.0, described.<Double>getAs("rope_base"));
        assertEquals("half", described.getAs("rope_style"));
        assertEquals((long) tokens, (long) described.getAs("reference_position"));
        assertNotNull(described.getAs("position_free_bands"));
        assertTrue((int) described.getAs("position_free_bands") > 0, "slow bands indexed position-free");
    }

    private static String rootMessage(Throwable t) {
        Throwable cause = t;
        while (cause.getCause() != null) {
            cause = cause.getCause();
        }
        return cause.getMessage();
    }

    private static float[] floats(List<Float> list) {
        float[] out = new float[list.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = list.get(i);
        }
        return out;
    }

    private static double maxAbsDiff(float[] a, float[] b) {
        assertEquals(a.length, b.length);
        double worst = 0;
        for (int i = 0; i < a.length; i++) {
            worst = Math.max(worst, Math.abs(a[i] - b[i]));
        }
        return worst;
    }

    /** Softmax attention of {@code q} over every key, in float64, scale 1/sqrt(d). */
    static double[] exactAttention(FloatMatrix k, FloatMatrix v, float[] q) {
        int n = k.rows();
        int d = k.cols();
        double[] logits = new double[n];
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            double dot = 0;
            for (int j = 0; j < d; j++) {
                dot += (double) q[j] * k.data()[i * d + j];
            }
            logits[i] = dot / Math.sqrt(d);
            max = Math.max(max, logits[i]);
        }
        double total = 0;
        double[] out = new double[d];
        for (int i = 0; i < n; i++) {
            double p = Math.exp(logits[i] - max);
            total += p;
            for (int j = 0; j < d; j++) {
                out[j] += p * v.data()[i * d + j];
            }
        }
        for (int j = 0; j < d; j++) {
            out[j] /= total;
        }
        return out;
    }

    static double relativeError(float[] actual, double[] exact) {
        double diff = 0;
        double norm = 0;
        for (int j = 0; j < exact.length; j++) {
            diff += (actual[j] - exact[j]) * (actual[j] - exact[j]);
            norm += exact[j] * exact[j];
        }
        return Math.sqrt(diff / norm);
    }
}
