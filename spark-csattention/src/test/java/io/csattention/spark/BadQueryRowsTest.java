package io.csattention.spark;

import org.apache.spark.ExceptionFailure;
import org.apache.spark.scheduler.AccumulableInfo;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerStageCompleted;
import org.apache.spark.scheduler.SparkListenerTaskEnd;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Bad query rows through the decode job and the SQL function, on a session of its own where Spark really retries
 * ({@code local[2,4]}: a task may fail 4 times): every bad row kind gives the same one line from both, fails its task
 * once, or is routed; good rows decode identically; the SQL function counts like the job.
 */
class BadQueryRowsTest {

    static final TestTensors DATA = new TestTensors(2, 2, 2, 240, 16, 13L);
    static final Map<String, String> BUILD = Map.of("centroids", "16");

    static SparkSession spark;
    @TempDir
    static Path dir;
    static String index;
    /** The good rows (one per query head) and every bad row, as Parquet: the SQL function runs in tasks. */
    static String queries;
    static final Listener LISTENER = new Listener();

    /** Failed task attempts, retries (attempts after the first) and the csattention accumulators of the stages. */
    static final class Listener extends SparkListener {
        final AtomicInteger failedAttempts = new AtomicInteger();
        final AtomicInteger retries = new AtomicInteger();
        final Map<String, Long> counters = new ConcurrentHashMap<>();

        @Override
        public void onTaskStart(org.apache.spark.scheduler.SparkListenerTaskStart start) {
            if (start.taskInfo().attemptNumber() > 0) {
                retries.incrementAndGet();
            }
        }

        @Override
        public void onTaskEnd(SparkListenerTaskEnd end) {
            if (end.reason() instanceof ExceptionFailure) {
                failedAttempts.incrementAndGet();
            }
        }

        @Override
        public void onStageCompleted(SparkListenerStageCompleted completed) {
            scala.collection.Iterator<AccumulableInfo> it = completed.stageInfo().accumulables().values().iterator();
            while (it.hasNext()) {
                AccumulableInfo info = it.next();
                if (info.name().isDefined() && info.name().get().startsWith("csattention.")
                        && info.value().isDefined()) {
                    counters.merge(info.name().get(), ((Number) info.value().get()).longValue(), Long::sum);
                }
            }
        }

        void reset() {
            settle();
            failedAttempts.set(0);
            retries.set(0);
            counters.clear();
        }

        /** Waits until the listener has seen every event posted so far. */
        void settle() {
            try {
                spark.sparkContext().listenerBus().waitUntilEmpty(30_000);
            } catch (java.util.concurrent.TimeoutException e) {
                throw new IllegalStateException(e);
            }
        }
    }

    @BeforeAll
    static void start() throws IOException {
        SharedSpark.stop();
        spark = SparkSession.builder()
                .master("local[2,4]")
                .appName("csattention-bad-rows")
                .config("spark.ui.enabled", "false")
                .config("spark.sql.shuffle.partitions", "2")
                .config("spark.sql.adaptive.enabled", "false")
                .config("spark.sql.extensions", CSAttentionExtensions.class.getName())
                .getOrCreate();
        spark.sparkContext().addSparkListener(LISTENER);
        index = dir.resolve("index").toString();
        CSAttention.buildIndexes(DATA.contextsTable(spark), index, BUILD);
        queries = dir.resolve("bad-rows.parquet").toString();
        mixedTable().write().parquet(queries);
        spark.read().parquet(queries).createOrReplaceTempView("bad_rows");
    }

    @AfterAll
    static void stop() {
        spark.stop();
        SparkSession.clearActiveSession();
        SparkSession.clearDefaultSession();
    }

    /** A good query vector of ctx-0, layer 0, query head 1, with {@code edit} applied. */
    private static Object vector(java.util.function.UnaryOperator<Float[]> edit) {
        float[] q = TestTensors.floats(DATA.queries(0, 0, 1, 1));
        Float[] boxed = new Float[q.length];
        for (int i = 0; i < q.length; i++) {
            boxed[i] = q[i];
        }
        return edit.apply(boxed);
    }

    /** query_id to (row, the line the job and the SQL function must give for it). */
    private static Map<Long, Object[]> badRows() {
        Map<Long, Object[]> rows = new LinkedHashMap<>();
        String head = "head must be a query head of context_id=ctx-0 layer=0, in [0, 2) (2 KV heads x 1 query heads "
                + "per KV head); head=";
        bad(rows, 101, "ctx-0", 0, 1, vector(v -> set(v, 3, Float.NaN)),
                "query must hold finite values (query_id=101); query[3]=NaN");
        bad(rows, 102, "ctx-0", 0, 1, vector(v -> set(v, 0, Float.POSITIVE_INFINITY)),
                "query must hold finite values (query_id=102); query[0]=Infinity");
        bad(rows, 104, "ctx-0", 0, 1, vector(v -> set(v, 5, null)),
                "query must hold finite values (query_id=104); query[5]=NaN");
        bad(rows, 105, "ctx-0", 0, 1, vector(v -> java.util.Arrays.copyOf(v, 3)),
                "query must have head_dim=16 values (query_id=105); query.length=3");
        bad(rows, 106, "nowhere", 0, 1, vector(v -> v),
                "context_id must name a context of the index set " + index + " (query_id=106); context_id=nowhere");
        bad(rows, 107, "ctx-0", 7, 1, vector(v -> v),
                "layer must be a layer of context_id=ctx-0 ([0, 1]); layer=7 (query_id=107)");
        bad(rows, 108, "ctx-0", 0, 2, vector(v -> v), head + "2 (query_id=108)");
        bad(rows, 109, "ctx-0", 0, -1, vector(v -> v), head + "-1 (query_id=109)");
        bad(rows, 110, "ctx-0", 0, 1, null, "query must not be null (query_id=110); query=null");
        bad(rows, 111, null, 0, 1, vector(v -> v), "context_id, layer and head must not be null (query_id=111); "
                + "context_id=null, layer=0, head=1");
        bad(rows, 113, "ctx-0", 0, null, vector(v -> v), "context_id, layer and head must not be null "
                + "(query_id=113); context_id=ctx-0, layer=0, head=null");
        return rows;
    }

    private static Float[] set(Float[] v, int i, Float value) {
        v[i] = value;
        return v;
    }

    private static void bad(Map<Long, Object[]> rows, long id, String context, Integer layer, Integer head,
                            Object query, String line) {
        rows.put(id, new Object[] {RowFactory.create(id, context, layer, head, query), line});
    }

    private static Dataset<Row> table(List<Row> rows) {
        return spark.createDataFrame(rows, TestTensors.QUERIES);
    }

    /** The good rows (one per query head) and every bad row, the good ones first. */
    private static Dataset<Row> mixedTable() {
        List<Row> rows = new ArrayList<>(DATA.queriesTable(spark, 1).collectAsList());
        for (Object[] bad : badRows().values()) {
            rows.add((Row) bad[0]);
        }
        return table(rows);
    }

    private static String sqlFailure(String view, String arguments) {
        Exception e = assertThrows(Exception.class, () -> spark.sql("SELECT csattention_decode('" + index
                + "', context_id, layer, head, query" + arguments + ") FROM " + view).collectAsList());
        String line = QueryCheck.badRow(e);
        assertNotNull(line, () -> "no bad-row line in " + e);
        assertFalse(e.getMessage().contains("\n"), "one line: " + e.getMessage());
        return line;
    }

    @Test
    void everyBadRowKindGivesTheJobsLineFromTheSqlFunctionAndFailsItsTaskOnce() throws IOException {
        for (Map.Entry<Long, Object[]> bad : badRows().entrySet()) {
            String line = (String) bad.getValue()[1];
            Dataset<Row> one = spark.read().parquet(queries).where("query_id = " + bad.getKey());
            // the job's line of every kind is also checked in route mode (routedRowsCarry...); failing the job
            // carries the line the same way for each kind, so a few kinds of fail mode keep the test short
            if (!JOB_FAIL_MODE_KINDS.contains(bad.getKey())) {
                assertSqlFailsOnce(bad.getKey(), line);
                continue;
            }
            LISTENER.reset();
            Exception job = assertThrows(Exception.class,
                    () -> CSAttention.decode(one, index, Map.of()).collectAsList());
            assertEquals(line, QueryCheck.badRow(job), "decode job, query_id=" + bad.getKey());
            LISTENER.settle();
            assertEquals(1, LISTENER.failedAttempts.get(), "failed attempts of the job, query_id=" + bad.getKey());
            assertEquals(0, LISTENER.retries.get(), "retries of the job, query_id=" + bad.getKey());

            assertSqlFailsOnce(bad.getKey(), line);
        }
        // without a query_id argument the line names the row's context, layer and head
        assertEquals("head must be a query head of context_id=ctx-0 layer=0, in [0, 2) (2 KV heads x 1 query heads "
                + "per KV head); head=2 (context_id=ctx-0 layer=0 head=2)",
                sqlFailure("bad_rows WHERE query_id = 108", ""));
        assertEquals("query must hold finite values (context_id=ctx-0 layer=0 head=1); query[3]=NaN",
                sqlFailure("bad_rows WHERE query_id = 101", ", true"));
    }

    /** NaN, an unknown context, a null id. */
    private static final java.util.Set<Long> JOB_FAIL_MODE_KINDS = java.util.Set.of(101L, 106L, 111L);

    private static void assertSqlFailsOnce(long id, String line) {
        LISTENER.reset();
        assertEquals(line, sqlFailure("bad_rows WHERE query_id = " + id, ", 'fail', query_id"), "SQL, query_id=" + id);
        LISTENER.settle();
        assertEquals(1, LISTENER.failedAttempts.get(), "failed attempts of the SQL query, query_id=" + id);
        assertEquals(0, LISTENER.retries.get(), "retries of the SQL query, query_id=" + id);
    }

    @Test
    void aBadRowInAWrittenJobFailsOnceAndWritesNothing() throws IOException {
        // one task, so that no other task with a bad row can fail before the stage is aborted
        Dataset<Row> input = spark.read().parquet(queries).coalesce(1);
        String out = dir.resolve("written").toString();
        LISTENER.reset();
        Exception e = assertThrows(Exception.class,
                () -> CSAttention.decode(input, index, Map.of()).write().parquet(out));
        String line = QueryCheck.badRow(e);
        assertNotNull(line, () -> "no bad-row line in " + e);
        assertTrue(badRows().values().stream().anyMatch(b -> b[1].equals(line)), line);
        LISTENER.settle();
        assertEquals(1, LISTENER.failedAttempts.get(), "failed attempts of the write");
        assertEquals(0, LISTENER.retries.get(), "retries of the write");
        assertFalse(java.nio.file.Files.exists(Path.of(out).resolve("_SUCCESS")));
    }

    @Test
    void onlyALineNamingAQueryIsTakenForABadRow() {
        String aborted = "Job aborted due to stage failure: task 0.0 in stage 3.0 (TID 7) had a not serializable "
                + "result: ";
        assertEquals("query must not be null (query_id=4); query=null", QueryCheck.badRow(
                new org.apache.spark.SparkException(aborted + "query must not be null (query_id=4); query=null")));
        assertNull(QueryCheck.badRow(new org.apache.spark.SparkException(aborted + "org.example.Answer\n"
                + "Serialization stack:\n\t- object not serializable (class: org.example.Answer, value: a)")));
        assertNull(QueryCheck.badRow(new IllegalStateException("a transient failure")));
    }

    @Test
    void otherTaskFailuresAreStillRetried() {
        LISTENER.reset();
        assertThrows(Exception.class, () -> spark.range(4).coalesce(1).map(
                (org.apache.spark.api.java.function.MapFunction<Long, Long>) x -> {
                    throw new IllegalStateException("a transient failure");
                }, org.apache.spark.sql.Encoders.LONG()).collectAsList());
        LISTENER.settle();
        assertEquals(4, LISTENER.failedAttempts.get());
        assertEquals(3, LISTENER.retries.get());
    }

    @Test
    void routedRowsCarryTheJobsLineAndGoodRowsTheJobsOutput() throws IOException {
        Map<String, String> route = Map.of("onError", "route", "withSelected", "true");
        List<Row> job = CSAttention.decode(spark.read().parquet(queries), index, route).orderBy("query_id")
                .collectAsList();
        List<Row> sql = spark.sql("SELECT query_id, csattention_decode('" + index + "', context_id, layer, head, "
                + "query, 'route,selected', query_id) AS r FROM bad_rows ORDER BY query_id").collectAsList();
        Map<Long, Object[]> bad = badRows();
        assertEquals(8 + bad.size(), job.size());
        assertEquals(job.size(), sql.size());
        for (int i = 0; i < job.size(); i++) {
            Row j = job.get(i);
            Row s = sql.get(i).getStruct(1);
            long id = j.getAs("query_id");
            assertEquals(id, (long) sql.get(i).getAs("query_id"));
            Object[] expected = bad.get(id);
            assertEquals(expected == null ? null : expected[1], j.getAs("error"), "job, query_id=" + id);
            assertEquals(expected == null ? null : expected[1], s.getAs("error"), "SQL, query_id=" + id);
            if (expected == null) {
                assertEquals(j.getList(j.fieldIndex("output")), s.getList(s.fieldIndex("output")), "query_id=" + id);
                assertEquals(j.getList(j.fieldIndex("selected_ids")), s.getList(s.fieldIndex("selected_ids")));
                assertEquals(16, s.getList(s.fieldIndex("output")).size());
            } else {
                assertNull(s.getAs("output"), "query_id=" + id);
                assertNull(s.getAs("selected_ids"), "query_id=" + id);
                assertNull(j.getAs("output"), "query_id=" + id);
            }
        }
    }

    @Test
    void theSessionOptionRoutesAndTheFlagsOverrideIt() {
        spark.conf().set("spark.csattention.onError", "route");
        try {
            List<Row> routed = spark.sql("SELECT query_id, csattention_decode('" + index + "', context_id, layer, "
                    + "head, query) AS r FROM bad_rows WHERE query_id IN (0, 102) ORDER BY query_id").collectAsList();
            assertEquals(List.of("output", "error"), List.of(routed.get(0).getStruct(1).schema().fieldNames()));
            assertNull(routed.get(0).getStruct(1).getAs("error"));
            assertEquals("query must hold finite values (context_id=ctx-0 layer=0 head=1); query[0]=Infinity",
                    routed.get(1).getStruct(1).getAs("error"));
            assertEquals("query must hold finite values (context_id=ctx-0 layer=0 head=1); query[0]=Infinity",
                    sqlFailure("bad_rows WHERE query_id = 102", ", 'fail'"));
        } finally {
            spark.conf().unset("spark.csattention.onError");
        }
        Exception flags = assertThrows(Exception.class, () -> spark.sql("SELECT csattention_decode('" + index
                + "', context_id, layer, head, query, 'route,selcted') FROM bad_rows"));
        assertEquals("csattention_decode flags must be comma-separated words of selected, route, fail; "
                + "flags='route,selcted'", CSAttentionSparkTest.rootMessage(flags));
    }

    @Test
    void theSqlFunctionCountsLikeTheJob() {
        ExecutorIndexCache.INSTANCE.clear();
        LISTENER.reset();
        // the 8 good rows (one per query head of 8 heads) and 2 bad ones
        long rows = spark.sql("SELECT csattention_decode('" + index + "', context_id, layer, head, query, 'route') "
                + "AS r FROM bad_rows WHERE query_id < 8 OR query_id IN (101, 106)").collectAsList().size();
        LISTENER.settle();
        assertEquals(10, rows);
        assertEquals(8L, LISTENER.counters.get("csattention.queriesDecoded"));
        assertEquals(2L, LISTENER.counters.get("csattention.queryErrors"));
        assertEquals(8L, LISTENER.counters.get("csattention.indexesLoaded"));
    }
}
