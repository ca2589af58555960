package io.csattention.spark;

import io.csattention.core.Attention;
import io.csattention.core.CSAttentionIndex;
import io.csattention.core.CSAttentionSelector;
import io.csattention.core.FloatMatrix;
import io.csattention.core.KeyValueCache;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The decode planned by head: queries in mixed order over 8 heads (one of them with more rows than a task holds)
 * come back in the input's order with the library's outputs and the one-stage plan's rows; each task holds the rows
 * of one head; each head is loaded once; a head larger than the cache budget is refused before the job.
 */
class DecodeByHeadSparkTest {

    static final TestTensors DATA = new TestTensors(2, 1, 4, 2048, 32, 23L);
    static final Map<String, String> OPTIONS = Map.of("centroids", "16", "withSelected", "true", "blockSize", "64",
            "rowsPerTask", "300");
    /** Rows per head: head (ctx-0, 0, 0) has more than one task's 300 and is split over 3 tasks. */
    static final int PER_HEAD = 250;
    static final int LARGE_HEAD = 700;

    @TempDir
    static Path dir;
    static SparkSession spark;
    static String index;
    static Dataset<Row> queries;
    static IndexSet.Manifest built;

    @BeforeAll
    static void build() throws IOException {
        spark = SharedSpark.get();
        index = dir.resolve("index").toString();
        built = CSAttention.buildIndexes(DATA.contextsTable(spark), index, OPTIONS);
        long seed = 77L;
        System.out.println("DecodeByHeadSparkTest seed=" + seed);
        List<Row> rows = new ArrayList<>();
        long id = 0;
        for (int c = 0; c < DATA.contexts; c++) {
            for (int h = 0; h < DATA.kvHeads; h++) {
                int n = c == 0 && h == 0 ? LARGE_HEAD : PER_HEAD;
                FloatMatrix q = DATA.queries(c, 0, h, n);
                for (int i = 0; i < n; i++) {
                    rows.add(RowFactory.create(id++, TestTensors.contextId(c), 0, h,
                            TestTensors.floats(q.rows(i, i + 1))));
                }
            }
        }
        Collections.shuffle(rows, new Random(seed));
        String path = dir.resolve("queries.parquet").toString();
        int files = 3;
        for (int f = 0; f < files; f++) {
            spark.createDataFrame(rows.subList(f * rows.size() / files, (f + 1) * rows.size() / files),
                    TestTensors.QUERIES).coalesce(1).write().mode("append").parquet(path);
        }
        queries = spark.read().parquet(path);
    }

    private static List<Row> withoutTimes(List<Row> rows) {
        List<Row> out = new ArrayList<>();
        for (Row r : rows) {
            out.add(RowFactory.create(r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.getList(5),
                    r.getList(6)));
        }
        return out;
    }

    @Test
    void mixedOrderRowsComeBackInTheInputsOrderWithTheLibrarysOutputs() throws IOException {
        List<Object> order = queries.select("query_id").collectAsList().stream().map(r -> r.get(0)).toList();
        ExecutorIndexCache.INSTANCE.clear();
        CSAttentionMetrics metrics = new CSAttentionMetrics(spark.sparkContext());
        Dataset<Row> decoded = CSAttention.decode(queries, index, OPTIONS, metrics);
        List<Row> rows = decoded.collectAsList();
        assertEquals(order, rows.stream().map(r -> r.get(0)).toList(), "the input's row order");
        assertEquals(queries.rdd().getNumPartitions(), decoded.rdd().getNumPartitions(),
                "the input's partitions");
        int heads = 2 * 4;
        assertEquals(heads, metrics.indexesLoaded.value(), "each head loaded once");
        assertEquals(Map.of("driver", (long) heads), metrics.loadsByExecutor());
        assertEquals((long) heads, metrics.values().get("maxLoadsPerExecutor"));
        assertEquals(heads + 2, metrics.indexesLoaded.value() + metrics.cacheHits.value(),
                "each of the 10 tasks (3 for the large head) borrows its head once, across its blocks of 64 rows");
        long peak = metrics.values().get("cachePeakBytes");
        assertTrue(peak > 0 && peak <= CSAttentionOptions.DEFAULT_CACHE_BUDGET, "cache peak " + peak);

        CSAttentionOptions options = CSAttentionOptions.parse(OPTIONS);
        Map<String, float[]> expected = new HashMap<>();
        for (int c = 0; c < DATA.contexts; c++) {
            for (int h = 0; h < DATA.kvHeads; h++) {
                FloatMatrix k = DATA.keys(c, 0, h);
                KeyValueCache cache = KeyValueCache.of(k, DATA.values(c, 0, h));
                CSAttentionIndex idx = CSAttentionIndex.build(options.kernels(), k, DATA.prefill(c, 0, h),
                        options.settings());
                CSAttentionSelector selector = new CSAttentionSelector(options.kernels(), idx, cache,
                        options.settings().rescoreFactor());
                int n = c == 0 && h == 0 ? LARGE_HEAD : PER_HEAD;
                FloatMatrix q = DATA.queries(c, 0, h, n);
                for (int i = 0; i < n; i++) {
                    float[] query = q.row(i);
                    int[] selected = selector.select(query, 0, options.settings().plan(k.rows()));
                    float[] o = new float[DATA.dim];
                    Attention.attend(options.kernels(), query, 0, cache, selected, o, 0);
                    expected.put(c + "/" + h + "/" + i, o);
                }
            }
        }
        Map<String, Integer> nth = new HashMap<>();
        Map<Long, String> keyOf = new HashMap<>();
        long id = 0;
        for (int c = 0; c < DATA.contexts; c++) {
            for (int h = 0; h < DATA.kvHeads; h++) {
                int n = c == 0 && h == 0 ? LARGE_HEAD : PER_HEAD;
                for (int i = 0; i < n; i++) {
                    keyOf.put(id++, c + "/" + h + "/" + i);
                }
            }
        }
        for (Row r : rows) {
            String key = keyOf.get((Long) r.get(0));
            assertArrayEquals(expected.get(key), CSAttentionSparkTest.floats(r.getList(r.fieldIndex("output"))),
                    key);
            nth.merge(key, 1, Integer::sum);
        }
        assertEquals(expected.size(), nth.size());

        List<Row> asIs = withoutTimes(CSAttention.decode(queries, index, with("decodePlan", "asIs")).collectAsList());
        assertEquals(asIs, withoutTimes(rows), "the one-stage plan gives the same rows in the same order");
    }

    private static Map<String, String> with(String key, String value) {
        Map<String, String> o = new HashMap<>(OPTIONS);
        o.put(key, value);
        return o;
    }

    @Test
    void theDataSourceReadBorrowsEachHeadOncePerFileAndKeepsTheFilesOrder() throws IOException {
        String path = dir.resolve("queries.parquet").toString();
        String[] files = spark.read().parquet(path).inputFiles();
        java.util.Arrays.sort(files);
        List<Object> order = new ArrayList<>();
        int headsPerFile = 0;
        for (String f : files) {
            order.addAll(spark.read().parquet(f).select("query_id").collectAsList().stream().map(r -> r.get(0))
                    .toList());
            headsPerFile += (int) spark.read().parquet(f).select("context_id", "head").distinct().count();
        }
        Map<Object, Row> byId = new HashMap<>();
        for (Row r : withoutTimes(CSAttention.decode(queries, index, OPTIONS).collectAsList())) {
            byId.put(r.get(0), r);
        }
        ExecutorIndexCache.INSTANCE.clear();
        List<Row> read = withoutTimes(spark.read().format(CSAttentionDataSource.NAME).option("queries", path)
                .options(OPTIONS).load(index).collectAsList());
        assertEquals(order, read.stream().map(r -> r.get(0)).toList(), "files by name, each file's rows in order");
        for (Row r : read) {
            assertEquals(byId.get(r.get(0)), r);
        }
        assertEquals(headsPerFile, ExecutorIndexCache.INSTANCE.borrows(),
                "a file of fewer than 4096 rows borrows each of its heads once, its rows mixed as they are");
        assertEquals(8, ExecutorIndexCache.INSTANCE.loads());
    }

    @Test
    void eachTaskHoldsTheRowsOfOneHead() throws IOException {
        List<List<Row>> tasks = CSAttention.decode(queries, index, with("preserveOrder", "false"))
                .select("context_id", "kv_head").javaRDD().glom().collect();
        assertEquals(10, tasks.size(), "7 heads of 250 rows, one task each, and 3 tasks of the head of 700");
        Map<String, Integer> tasksOfHead = new HashMap<>();
        for (List<Row> task : tasks) {
            Set<String> heads = new HashSet<>();
            for (Row r : task) {
                heads.add(r.getString(0) + "/" + r.getInt(1));
            }
            assertEquals(1, heads.size(), "one head per task: " + heads);
            assertTrue(task.size() <= 300, "at most rowsPerTask rows: " + task.size());
            tasksOfHead.merge(heads.iterator().next(), 1, Integer::sum);
        }
        assertEquals(3, tasksOfHead.get("ctx-0/0"));
    }

    @Test
    void smallHeadsShareATaskAndOrderCanBeLeftToTheTasks() throws IOException {
        List<List<Row>> tasks = CSAttention.decode(queries, index, Map.of("centroids", "16", "preserveOrder",
                "false", "rowsPerTask", "600")).select("context_id", "kv_head").javaRDD().glom().collect();
        for (List<Row> task : tasks) {
            List<String> runs = new ArrayList<>();
            for (Row r : task) {
                String head = r.getString(0) + "/" + r.getInt(1);
                if (runs.isEmpty() || !runs.get(runs.size() - 1).equals(head)) {
                    runs.add(head);
                }
            }
            assertEquals(new HashSet<>(runs).size(), runs.size(), "a task's rows come grouped by head: " + runs);
            assertTrue(runs.size() <= 2, "two heads of 250 rows fit 600 rows: " + runs);
        }
        assertEquals(queries.count(), tasks.stream().mapToLong(List::size).sum());
    }

    @Test
    void optionErrorsAndAHeadLargerThanTheBudgetAreOneLine() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> CSAttention.decode(queries, index, with("rowsPerTask", "0")));
        assertEquals("rowsPerTask must be > 0; rowsPerTask=0", e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> CSAttention.decode(queries, index, with("decodePlan", "sorted")));
        assertEquals("decodePlan must be byHead or asIs; decodePlan=sorted", e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> CSAttention.decode(queries, index, with("preserveOrder", "yes")));
        assertEquals("preserveOrder must be true or false; preserveOrder=yes", e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> CSAttention.decode(queries, index, with("cacheBudget", "100k")));
        IndexSet.Entry first = built.heads().stream().filter(h -> h.key().equals(new HeadKey("ctx-0", 0, 0)))
                .findFirst().orElseThrow();
        // the file's bytes and the int8 sketch of the keys (d + 4 bytes a key)
        long need = first.bytes() + 2048L * (32 + 4);
        assertEquals("a head of context_id=ctx-0 layer=0 kv_head=0 needs " + need + " bytes, more than "
                + "cacheBudget=102400; raise cacheBudget", e.getMessage());
    }
}
