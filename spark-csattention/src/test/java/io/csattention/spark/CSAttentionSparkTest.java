package io.csattention.spark;

import io.csattention.core.Attention;
import io.csattention.core.CSAttentionIndex;
import io.csattention.core.CSAttentionSelector;
import io.csattention.core.FloatMatrix;
import io.csattention.core.KeyValueCache;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Build, read and decode through Spark on the shared local session, with real Parquet and Hadoop FS I/O. */
class CSAttentionSparkTest {

    static final TestTensors DATA = new TestTensors(3, 2, 2, 240, 16, 7L);
    static final Map<String, String> OPTIONS = Map.of("sparsity", "0.9", "centroids", "16", "withSelected", "true");

    static SparkSession spark;
    @TempDir
    static Path dir;
    static String index;
    static IndexSet.Manifest built;

    @BeforeAll
    static void build() throws IOException {
        spark = SharedSpark.get();
        String contexts = dir.resolve("contexts.parquet").toString();
        DATA.contextsTable(spark).write().parquet(contexts);
        index = dir.resolve("index").toString();
        built = CSAttention.buildIndexes(spark.read().parquet(contexts), index, OPTIONS);
    }

    @Test
    void buildsEveryHeadOnceAndCommitsAManifest() {
        assertEquals(12, built.heads().size());
        assertEquals(3L, built.counters().get("contextsPrefilled"));
        assertEquals(12L, built.counters().get("headsBuilt"));
        assertEquals(1L, built.commit());
        assertFalse(Files.exists(dir.resolve("index").resolve(IndexSet.TEMP_DIR)), "no _temporary/ left");
    }

    @Test
    void dataSourceReadListsTheHeads() {
        List<Row> rows = CSAttention.describe(spark, index).orderBy("context_id", "layer", "kv_head").collectAsList();
        assertEquals(12, rows.size());
        Row first = rows.get(0);
        assertEquals("ctx-0", first.getAs("context_id"));
        assertEquals(240, (int) first.getAs("keys"));
        assertEquals(16, (int) first.getAs("head_dim"));
        assertEquals(16, (int) first.getAs("centroids"));
        assertEquals(8L * 240 * 16, (long) first.getAs("kv_bytes"));
    }

    @Test
    void decodeMatchesTheLibraryAndRoundTripsThroughParquet() throws IOException {
        String queries = dir.resolve("queries.parquet").toString();
        DATA.queriesTable(spark, 5).write().parquet(queries);
        String out = dir.resolve("decoded.parquet").toString();
        CSAttentionMetrics metrics = new CSAttentionMetrics(spark.sparkContext());
        ExecutorIndexCache.INSTANCE.clear();
        CSAttention.decode(spark.read().parquet(queries), index, OPTIONS, metrics).write().parquet(out);
        List<Row> rows = spark.read().parquet(out).orderBy("query_id").collectAsList();
        assertEquals(60, rows.size());
        assertEquals(60L, metrics.queriesDecoded.value());
        assertEquals(12L, metrics.indexesLoaded.value());
        assertTrue(metrics.cacheHits.value() <= 12L * spark.read().parquet(queries).rdd().getNumPartitions(),
                "a task takes each head from the cache at most once; hits=" + metrics.cacheHits.value());

        CSAttentionOptions options = CSAttentionOptions.parse(OPTIONS);
        Map<String, float[]> expected = new HashMap<>();
        for (int c = 0; c < 3; c++) {
            for (int l = 0; l < 2; l++) {
                for (int h = 0; h < 2; h++) {
                    FloatMatrix k = DATA.keys(c, l, h);
                    KeyValueCache cache = KeyValueCache.of(k, DATA.values(c, l, h));
                    CSAttentionIndex idx = CSAttentionIndex.build(options.kernels(), k, DATA.prefill(c, l, h),
                            options.settings());
                    CSAttentionSelector selector = new CSAttentionSelector(options.kernels(), idx, cache,
                            options.settings().rescoreFactor());
                    FloatMatrix q = DATA.queries(c, l, h, 5);
                    for (int i = 0; i < 5; i++) {
                        float[] query = q.row(i);
                        int[] selected = selector.select(query, 0, options.settings().plan(k.rows()));
                        float[] o = new float[16];
                        Attention.attend(options.kernels(), query, 0, cache, selected, o, 0);
                        expected.put(c + "/" + l + "/" + h + "/" + i, o);
                    }
                }
            }
        }
        for (Row row : rows) {
            long id = row.getAs("query_id");
            int perHead = (int) (id % 5);
            String key = row.getAs("context_id").toString().substring(4) + "/" + row.getAs("layer") + "/"
                    + row.getAs("head") + "/" + perHead;
            assertArrayEquals(expected.get(key), floats(row.getList(row.fieldIndex("output"))), key);
            assertEquals(24, row.getList(row.fieldIndex("selected_ids")).size());
        }
    }

    @Test
    void broadcastAndExecutorReadsGiveTheSameRowsAndRerunsAreIdentical() throws IOException {
        Dataset<Row> queries = DATA.queriesTable(spark, 3);
        Map<String, String> noBroadcast = new HashMap<>(OPTIONS);
        noBroadcast.put("broadcastThreshold", "0");
        List<Row> a = outputs(CSAttention.decode(queries, index, OPTIONS));
        List<Row> b = outputs(CSAttention.decode(queries, index, noBroadcast));
        List<Row> c = outputs(CSAttention.decode(queries, index, OPTIONS));
        assertEquals(a, b);
        assertEquals(a, c);
    }

    @Test
    void aTaskRetriedAfterAFailureGivesIdenticalRows() throws IOException {
        Dataset<Row> queries = DATA.queriesTable(spark, 3).repartition(2);
        List<Row> clean = outputs(CSAttention.decode(queries, index, OPTIONS));
        Dataset<Row> failingOnce = queries.mapPartitions(FailFirstAttempt.INSTANCE,
                org.apache.spark.sql.Encoders.row(queries.schema()));
        List<Row> retried = outputs(CSAttention.decode(failingOnce, index, OPTIONS));
        assertEquals(clean, retried);
    }

    /** Fails the first attempt of partition 0 (the shared session allows one retry). */
    enum FailFirstAttempt implements org.apache.spark.api.java.function.MapPartitionsFunction<Row, Row> {
        INSTANCE;

        @Override
        public java.util.Iterator<Row> call(java.util.Iterator<Row> input) {
            org.apache.spark.TaskContext task = org.apache.spark.TaskContext.get();
            if (task.partitionId() == 0 && task.attemptNumber() == 0) {
                throw new IllegalStateException("forced failure of the first attempt");
            }
            return input;
        }
    }

    @Test
    void aSecondBuildOfTheSameContextsWritesTheSameFiles() throws IOException {
        String again = dir.resolve("index-again").toString();
        IndexSet.Manifest second = CSAttention.buildIndexes(DATA.contextsTable(spark), again, OPTIONS);
        assertEquals(built.heads().stream().map(IndexSet.Entry::checksum).toList(),
                second.heads().stream().map(IndexSet.Entry::checksum).toList());
    }

    /** {@code csattention.`path`} in SQL (catalog csattention, SharedSpark's configuration) is the DataSource read. */
    @Test
    void sqlOnTheIndexSetPathReadsWhatTheDataSourceReads() {
        String columns = "context_id, layer, kv_head, keys, head_dim, centroids, kv_bytes, commit";
        List<Row> sql = spark.sql("SELECT " + columns + " FROM csattention.`" + index + "` ORDER BY context_id, "
                + "layer, kv_head").collectAsList();
        assertEquals(12, sql.size());
        assertEquals(spark.read().format("csattention").load(index).selectExpr(columns.split(", "))
                .orderBy("context_id", "layer", "kv_head").collectAsList(), sql);
        assertEquals(4L, spark.sql("SELECT count(*) FROM csattention.`" + index + "` WHERE context_id = 'ctx-1'")
                .first().getLong(0));
        String missing = dir.resolve("no-index-here").toString();
        Exception e = assertThrows(Exception.class,
                () -> spark.sql("SELECT * FROM csattention.`" + missing + "`").collectAsList());
        assertEquals("index path must hold a committed index set (a _manifest-*.json written by a successful "
                + "build); path=" + missing, rootMessage(e));
    }

    /**
     * {@code save()} in Spark's default mode, errorifexists, builds into a path without an index set and refuses
     * one that holds a set with the one line of {@link CSAttention#buildIndexes}; ignore leaves that set as it is.
     */
    @Test
    void dataSourceWriteInTheDefaultModeBuildsOnceAndIgnoreKeepsTheSet() throws IOException {
        String path = dir.resolve("index-default-mode").toString();
        Dataset<Row> contexts = DATA.contextsTable(spark);
        contexts.where("context_id = 'ctx-0'").write().format("csattention").options(OPTIONS).save(path);
        IndexSet.Manifest first = IndexSet.require(new HadoopConf(spark.sparkContext().hadoopConfiguration()), path);
        assertEquals(1L, first.commit());
        assertEquals(built.heads().stream().filter(h -> h.contextId().equals("ctx-0")).map(IndexSet.Entry::checksum)
                .toList(), first.heads().stream().map(IndexSet.Entry::checksum).toList());
        Exception e = assertThrows(Exception.class,
                () -> contexts.write().format("csattention").options(OPTIONS).save(path));
        assertEquals("index path already holds an index set (use mode overwrite or append); path=" + path,
                rootMessage(e));
        contexts.write().format("csattention").options(OPTIONS).mode("ignore").save(path);
        contexts.where("context_id = 'ctx-1'").write().format("csattention").options(OPTIONS).mode("append")
                .save(path);
        List<Row> heads = spark.read().format("csattention").load(path).collectAsList();
        assertEquals(8, heads.size());
        assertTrue(heads.stream().allMatch(r -> (long) r.getAs("commit") == 2L), "ignore committed nothing");
        assertFalse(Files.exists(Path.of(path, IndexSet.TEMP_DIR)), "no _temporary/ left");
    }

    @Test
    void dataSourceWriteOverwritesAtomically() {
        String path = dir.resolve("index-datasource").toString();
        Dataset<Row> contexts = DATA.contextsTable(spark);
        contexts.where("context_id = 'ctx-1'").write().format("csattention").options(OPTIONS).mode("overwrite")
                .save(path);
        contexts.where("context_id = 'ctx-2'").write().format("csattention").options(OPTIONS).mode("overwrite")
                .save(path);
        List<Row> heads = spark.read().format("csattention").load(path).collectAsList();
        assertEquals(4, heads.size());
        assertTrue(heads.stream().allMatch(r -> r.getAs("context_id").equals("ctx-2")));
        assertEquals(2L, (long) heads.get(0).getAs("commit"));
    }

    @Test
    void aFailedBuildLeavesNothingAReaderAccepts() {
        String failed = dir.resolve("index-failed").toString();
        Dataset<Row> bad = DATA.contextsTable(spark).selectExpr("context_id", "layer", "kv_head", "chunk", "head_dim",
                "CASE WHEN context_id = 'ctx-2' AND layer = 1 THEN transform(keys, x -> CAST('NaN' AS FLOAT)) "
                        + "ELSE keys END AS keys",
                "values", "prefill_queries");
        Exception e = assertThrows(Exception.class, () -> CSAttention.buildIndexes(bad, failed, OPTIONS));
        assertTrue(rootMessage(e).startsWith("keys must hold finite values; keys["), rootMessage(e));
        assertTrue(rootMessage(e).endsWith("(context_id=ctx-2 layer=1 kv_head=0)"), rootMessage(e));
        IOException missing = assertThrows(IOException.class,
                () -> CSAttention.decode(DATA.queriesTable(spark, 1), failed, OPTIONS));
        assertEquals("index path must hold a committed index set (a _manifest-*.json written by a successful "
                + "build); path=" + failed, missing.getMessage());
        // Spark kills the failed job's other running task asynchronously, and that task removes its attempt
        // directory when it stops: the temporary directory must be gone once it has, within 30 s
        Path temp = Path.of(failed).resolve(IndexSet.TEMP_DIR);
        long deadline = System.nanoTime() + java.util.concurrent.TimeUnit.SECONDS.toNanos(30);
        while (Files.exists(temp) && System.nanoTime() < deadline) {
            sleepMillis(20);
        }
        assertFalse(Files.exists(temp), "left in " + temp + ": " + java.util.Arrays.toString(temp.toFile().list()));
    }

    @Test
    void whatAnAbortedBuildsLateTasksWriteIsRemovedAsTasksEnd() throws IOException {
        Path root = dir.resolve("index-late");
        Path late = root.resolve(IndexSet.TEMP_DIR).resolve("job-late").resolve("P-0-7");
        Files.createDirectories(late);
        Files.writeString(late.resolve("head-0.idx"), "written before the watch");
        Path users = root.resolve("notes.txt");
        Files.writeString(users, "not the build's");
        AbortedBuildCleanup.watch(spark.sparkContext(),
                new HadoopConf(spark.sparkContext().hadoopConfiguration()), root.toString(), "job-late");
        assertFalse(Files.exists(root.resolve(IndexSet.TEMP_DIR)), "the watch's own sweep");
        // a task that writes after the watch: removed once a task ends (the listener bus is asynchronous)
        Files.createDirectories(late);
        Files.writeString(late.resolve("head-0.idx"), "written after the watch");
        assertEquals(1L, spark.range(1).count());
        long deadline = System.nanoTime() + java.util.concurrent.TimeUnit.SECONDS.toNanos(30);
        while (Files.exists(late) && System.nanoTime() < deadline) {
            sleepMillis(20);
        }
        assertFalse(Files.exists(root.resolve(IndexSet.TEMP_DIR)), "left after a task ended");
        assertEquals("not the build's", Files.readString(users));
    }

    private static void sleepMillis(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    @Test
    void aFailedAppendKeepsThePreviousSet() throws IOException {
        String path = dir.resolve("index-append").toString();
        Dataset<Row> all = DATA.contextsTable(spark);
        CSAttention.buildIndexes(all.where("context_id = 'ctx-0'"), path, OPTIONS);
        Map<String, String> append = new HashMap<>(OPTIONS);
        append.put("mode", "append");
        Exception e = assertThrows(Exception.class, () -> CSAttention.buildIndexes(all, path, append));
        assertTrue(rootMessage(e).startsWith("index set must hold each head once; context_id=ctx-0 layer=0 "
                + "kv_head=0 is already in"), rootMessage(e));
        List<Row> heads = CSAttention.describe(spark, path).collectAsList();
        assertEquals(4, heads.size());
        IndexSet.Manifest appended = CSAttention.buildIndexes(all.where("context_id <> 'ctx-0'"), path, append);
        assertEquals(2L, appended.commit());
        assertEquals(12, appended.heads().size());
        IllegalArgumentException exists = assertThrows(IllegalArgumentException.class,
                () -> CSAttention.buildIndexes(all, path, OPTIONS));
        assertEquals("index path already holds an index set (use mode overwrite or append); path=" + path,
                exists.getMessage());
    }

    @Test
    void badQueriesFailNamingTheQueryOrAreRouted() throws IOException {
        Dataset<Row> queries = DATA.queriesTable(spark, 1).selectExpr("query_id",
                "CASE WHEN query_id = 3 THEN 'nowhere' ELSE context_id END AS context_id", "layer",
                "CASE WHEN query_id = 5 THEN 9 ELSE head END AS head",
                "CASE WHEN query_id = 7 THEN slice(query, 1, 3) ELSE query END AS query");
        Exception e = assertThrows(Exception.class,
                () -> CSAttention.decode(queries.where("query_id = 3"), index, OPTIONS).collectAsList());
        assertEquals("context_id must name a context of the index set " + index + " (query_id=3); "
                + "context_id=nowhere", QueryCheck.badRow(e));
        Map<String, String> route = new HashMap<>(OPTIONS);
        route.put("onError", "route");
        List<Row> rows = CSAttention.decode(queries, index, route).orderBy("query_id").collectAsList();
        assertEquals(12, rows.size());
        assertEquals("context_id must name a context of the index set " + index + " (query_id=3); "
                + "context_id=nowhere", rows.get(3).getAs("error"));
        assertEquals("head must be a query head of context_id=ctx-1 layer=0, in [0, 2) (2 KV heads x 1 query heads "
                + "per KV head); head=9 (query_id=5)", rows.get(5).getAs("error"));
        assertEquals("query must have head_dim=16 values (query_id=7); query.length=3", rows.get(7).getAs("error"));
        assertNull(rows.get(7).getAs("output"));
        assertNull(rows.get(0).getAs("error"));
    }

    @Test
    void schemaAndOptionErrorsAreOneLine() {
        Dataset<Row> noKeys = DATA.contextsTable(spark).drop("keys");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> CSAttention.buildIndexes(noKeys, dir.resolve("x").toString(), Map.of()));
        assertEquals("contexts must have a column keys; columns=[context_id, layer, kv_head, chunk, head_dim, values, "
                + "prefill_queries]", e.getMessage());
        Dataset<Row> textKeys = DATA.contextsTable(spark).withColumn("keys",
                org.apache.spark.sql.functions.lit("k"));
        e = assertThrows(IllegalArgumentException.class,
                () -> CSAttention.buildIndexes(textKeys, dir.resolve("x").toString(), Map.of()));
        assertEquals("contexts column keys must be array<float>, array<array<float>>, binary (float32) or binary "
                + "(float16, with option binaryType=float16); keys=string", e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> CSAttention.decode(DATA.queriesTable(spark, 1), index, Map.of("sparsity", "1.5")));
        assertEquals("sparsity must be in (0, 1); sparsity=1.5", e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> CSAttention.decode(DATA.queriesTable(spark, 1), index, Map.of("sparsty", "0.9")));
        assertTrue(e.getMessage().startsWith("option must be one of [binaryType, blockSize, "), e.getMessage());
        assertTrue(e.getMessage().endsWith("; sparsty=0.9"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> CSAttention.decode(DATA.queriesTable(spark, 1), index, Map.of("cacheBudget", "lots")));
        assertEquals("cacheBudget must be a size in bytes such as 512m or 2g; cacheBudget=lots", e.getMessage());
    }

    @Test
    void sqlFunctionDecodesLikeTheJob() throws IOException {
        Dataset<Row> queries = DATA.queriesTable(spark, 2);
        queries.createOrReplaceTempView("q");
        List<Row> sql = spark.sql("SELECT query_id, csattention_decode('" + index + "', context_id, layer, head, "
                + "query) AS output, csattention_decode('" + index + "', context_id, layer, head, query, true)"
                + ".selected_ids AS ids FROM q ORDER BY query_id").collectAsList();
        List<Row> job = CSAttention.decode(queries, index, Map.of("withSelected", "true")).orderBy("query_id")
                .collectAsList();
        assertEquals(24, sql.size());
        for (int i = 0; i < sql.size(); i++) {
            assertEquals(job.get(i).getList(job.get(i).fieldIndex("output")), sql.get(i).getList(1));
            assertEquals(job.get(i).getList(job.get(i).fieldIndex("selected_ids")), sql.get(i).getList(2));
        }
    }

    /** Decode output without the timing column, ordered by query_id. */
    static List<Row> outputs(Dataset<Row> decoded) {
        return decoded.drop("decode_nanos").orderBy("query_id").collectAsList();
    }

    static float[] floats(List<Object> list) {
        float[] out = new float[list.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = (Float) list.get(i);
        }
        return out;
    }

    static String rootMessage(Throwable e) {
        Throwable t = e;
        while (t.getCause() != null && t.getCause() != t) {
            t = t.getCause();
        }
        return t.getMessage();
    }
}
