package io.csattention.spark;

import io.csattention.core.FloatMatrix;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The cache budget bounds an executor's index bytes: one executor process with two task threads and 512 MB of heap
 * (1.5 times the budget plus the few hundred MB an executor needs of its own) decodes mixed-order queries over
 * 12 heads of about 2.5 MB each, 28 MB in all, with a 4 MB budget, so that one head fits at a time and the two tasks
 * take turns: planned by head every head is loaded once; decoded as the input comes (one-stage plan, heads switching
 * within blocks) heads are loaded again and again; in both the job completes, the rows are the same, and the
 * cache's high-water mark stays within the budget.
 */
class CacheBudgetSparkTest {

    @TempDir
    static Path dir;

    @Test
    void aBudgetBelowTheIndexSetsSizeBoundsTheExecutorsIndexBytes() throws IOException {
        long t0 = System.nanoTime();
        TestTensors data = new TestTensors(3, 1, 4, 4096, 64, 19L);
        int heads = 12;
        String index = dir.resolve("index").toString();
        Map<String, String> build = Map.of("centroids", "16", "kmeansIterations", "4");
        IndexSet.Manifest built = CSAttention.buildIndexes(data.contextsTable(SharedSpark.get()), index, build);
        long total = built.heads().stream().mapToLong(IndexSet.Entry::bytes).sum();
        long budget = 4L << 20;
        System.out.printf("CacheBudgetSparkTest: built at %.1f s%n", (System.nanoTime() - t0) / 1e9);
        assertTrue(total > 5 * budget, "the index files (" + total + " bytes) are far beyond the budget");

        long seed = 29L;
        System.out.println("CacheBudgetSparkTest seed=" + seed);
        List<Row> rows = new ArrayList<>();
        long id = 0;
        for (int c = 0; c < 3; c++) {
            for (int h = 0; h < 4; h++) {
                FloatMatrix q = data.queries(c, 0, h, 40);
                for (int i = 0; i < 40; i++) {
                    rows.add(RowFactory.create(id++, TestTensors.contextId(c), 0, h,
                            TestTensors.floats(q.rows(i, i + 1))));
                }
            }
        }
        Collections.shuffle(rows, new Random(seed));

        SparkSession spark = SeparateExecutorsTest.cluster(dir, "local-cluster[1,2,1024]", "512m", Map.of());
        System.out.printf("CacheBudgetSparkTest: cluster up at %.1f s%n", (System.nanoTime() - t0) / 1e9);
        try {
            Map<String, String> options = Map.of("cacheBudget", "4m", "broadcastThreshold", "0", "rowsPerTask", "40");
            var queries = spark.createDataFrame(rows, TestTensors.QUERIES);

            CSAttentionMetrics byHead = new CSAttentionMetrics(spark.sparkContext());
            List<Row> planned = CSAttention.decode(queries, index, options, byHead).collectAsList();
            assertEquals(rows.size(), planned.size());
            assertEquals(1, byHead.loadsByExecutor().size(), "one executor: " + byHead.loadsByExecutor());
            assertEquals((long) heads, byHead.loadsByExecutor().values().iterator().next(), "each head loaded once");
            long peak = byHead.values().get("cachePeakBytes");
            assertTrue(peak > 0 && peak <= budget, "cache peak " + peak + " within the budget " + budget);

            Map<String, String> asIs = new java.util.HashMap<>(options);
            asIs.put("decodePlan", "asIs");
            CSAttentionMetrics oneStage = new CSAttentionMetrics(spark.sparkContext());
            List<Row> unplanned = CSAttention.decode(queries, index, asIs, oneStage).collectAsList();
            long loads = oneStage.indexesLoaded.value();
            assertTrue(loads > heads, "heads switching within blocks are loaded again; loads=" + loads);
            peak = oneStage.values().get("cachePeakBytes");
            assertTrue(peak > 0 && peak <= budget, "cache peak " + peak + " within the budget " + budget);
            System.out.printf("CacheBudgetSparkTest: %d index bytes, budget %d: by head %d loads, as is %d loads, "
                    + "cache peak %d bytes; at %.1f s%n", total, budget, byHead.indexesLoaded.value(), loads, peak,
                    (System.nanoTime() - t0) / 1e9);
            assertEquals(withoutTimes(unplanned), withoutTimes(planned));
        } finally {
            spark.stop();
            SparkSession.clearActiveSession();
            SparkSession.clearDefaultSession();
        }
    }

    private static List<Row> withoutTimes(List<Row> rows) {
        List<Row> out = new ArrayList<>();
        for (Row r : rows) {
            out.add(RowFactory.create(r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.getList(5)));
        }
        return out;
    }
}
