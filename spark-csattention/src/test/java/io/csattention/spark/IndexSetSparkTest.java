package io.csattention.spark;

import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The index set's guarantees through the Spark build and read: escape, torn manifest, two writers. */
class IndexSetSparkTest {

    static final TestTensors DATA = new TestTensors(2, 1, 1, 240, 16, 11L);
    static final Map<String, String> OPTIONS = Map.of("sparsity", "0.9", "centroids", "16");

    static SparkSession spark;
    @TempDir
    static Path dir;

    @BeforeAll
    static void start() {
        spark = SharedSpark.get();
    }

    static Dataset<Row> context(int c) {
        return DATA.contextsTable(spark).where("context_id = '" + TestTensors.contextId(c) + "'");
    }

    static Map<String, String> mode(String mode) {
        Map<String, String> options = new HashMap<>(OPTIONS);
        options.put(CSAttention.MODE, mode);
        return options;
    }

    @Test
    void anOverwriteBuildRefusesAManifestNamingAFileOutsideTheIndexPath() throws IOException {
        Path outside = Files.writeString(dir.resolve("outside.txt"), "not an index file");
        String path = dir.resolve("escape").toString();
        CSAttention.buildIndexes(context(0), path, OPTIONS);
        Path manifest = Path.of(path).resolve(IndexSet.manifestName(1));
        String json = Files.readString(manifest);
        String escaped = json.replaceFirst("\"file\" : \"[^\"]*\"", "\"file\" : \"" + outside + "\"");
        assertTrue(!escaped.equals(json));
        Files.writeString(manifest, escaped);
        String expected = "index set manifest must name files under data/ of its index path (relative, no . or .. "
                + "segments); heads[0].file=" + outside + " (manifest=file:" + manifest + ")";
        IOException build = assertThrows(IOException.class,
                () -> CSAttention.buildIndexes(context(1), path, mode("overwrite")));
        assertEquals(expected, build.getMessage());
        assertEquals("not an index file", Files.readString(outside));
        assertEquals(expected, assertThrows(IOException.class,
                () -> CSAttention.decode(DATA.queriesTable(spark, 1), path, OPTIONS)).getMessage());
        assertEquals("not an index file", Files.readString(outside));
    }

    @Test
    void aTornNewestManifestLeavesThePreviousSetReadableAndBuildable() throws IOException {
        String path = dir.resolve("torn").toString();
        CSAttention.buildIndexes(context(0), path, OPTIONS);
        Files.write(Path.of(path).resolve(IndexSet.manifestName(2)), new byte[0]);
        List<Row> heads = CSAttention.describe(spark, path).collectAsList();
        assertEquals(1, heads.size());
        assertEquals(1L, (long) heads.get(0).getAs("commit"));
        assertEquals(5, CSAttention.decode(DATA.queriesTable(spark, 5).where("context_id = 'ctx-0'"), path, OPTIONS)
                .count());
        IndexSet.Manifest appended = CSAttention.buildIndexes(context(1), path, mode("append"));
        assertEquals(3L, appended.commit());
        assertEquals(2, appended.heads().size());
        assertEquals(2, CSAttention.describe(spark, path).count());
    }

    /** Two builds in the default mode (errorifexists) to one new path at once: one commits, one fails in a line. */
    @Test
    void ofTwoConcurrentBuildsExactlyOneCommits() throws Exception {
        String path = dir.resolve("race").toString();
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try {
            CyclicBarrier start = new CyclicBarrier(2);
            List<Future<IndexSet.Manifest>> runs = new ArrayList<>();
            for (int c = 0; c < 2; c++) {
                Dataset<Row> contexts = context(c);
                runs.add(pool.submit(() -> {
                    start.await();
                    return CSAttention.buildIndexes(contexts, path, OPTIONS);
                }));
            }
            List<IndexSet.Manifest> committed = new ArrayList<>();
            List<String> failures = new ArrayList<>();
            for (Future<IndexSet.Manifest> run : runs) {
                try {
                    committed.add(run.get());
                } catch (java.util.concurrent.ExecutionException e) {
                    failures.add(e.getCause().getMessage());
                }
            }
            assertEquals(1, committed.size(), failures.toString());
            assertEquals(List.of("index path already holds an index set (use mode overwrite or append); path="
                    + path), failures);
            IndexSet.Manifest winner = committed.get(0);
            assertEquals(1L, winner.commit());
            assertEquals(1, winner.heads().size());
            List<Row> heads = CSAttention.describe(spark, path).collectAsList();
            assertEquals(1, heads.size());
            assertEquals(winner.heads().get(0).contextId(), heads.get(0).getAs("context_id"));
            try (var jobs = Files.list(Path.of(path).resolve(IndexSet.DATA_DIR))) {
                assertEquals(List.of(winner.jobId()), jobs.map(p -> p.getFileName().toString()).toList(),
                        "the losing build's files are removed");
            }
        } finally {
            pool.shutdownNow();
        }
    }
}
