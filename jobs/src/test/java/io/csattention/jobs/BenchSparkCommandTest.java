package io.csattention.jobs;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** bench-spark end to end at a tiny size: the contract (JSON keys, the checked sample, bad input), no timing bars. */
class BenchSparkCommandTest {

    /** {@link SparkCommandsTest#run} as {code, stdout, stderr}. */
    private static String[] run(String... args) {
        SparkCommandsTest.Result r = SparkCommandsTest.run(args);
        return new String[] {Integer.toString(r.code()), r.out(), r.err()};
    }

    @Test
    void decodesColdAndWarmAndMatchesTheLibrary(@TempDir Path dir) throws Exception {
        Path work = dir.resolve("work");
        String[] result = run("bench-spark", "--contexts", "2", "--layers", "1", "--kv-heads", "2", "--tokens",
                "1024", "--head-dim", "32", "--rows", "2002", "--distinct-queries", "64", "--query-files", "3",
                "--work", work.toString());
        assertEquals("0", result[0], result[2]);
        String[] lines = result[1].strip().split("\n");
        JsonNode summary = new ObjectMapper().readTree(lines[lines.length - 1]);
        assertEquals(2000, summary.get("rows").asLong(), "rounded down to a multiple of the 4 heads");
        // the library's outputs of the first 64 rows of each head, computed outside Spark, are the job's bit for bit
        assertEquals(0.0, summary.get("max_abs_diff_vs_library").asDouble());
        for (String run : List.of("cold_mixed", "warm_mixed", "warm_sorted")) {
            JsonNode node = summary.get(run);
            assertEquals(2000, node.get("queriesDecoded").asLong(), run);
            assertTrue(node.get("queries_per_s").asDouble() > 0, run);
        }
        assertEquals(4, summary.get("cold_mixed").get("indexesLoaded").asLong(), "the cold run loads each head once");
        assertEquals(0, summary.get("warm_mixed").get("indexesLoaded").asLong(), "the warm run loads none");
        for (String key : List.of("spark_library_ratio_warm_mixed", "spark_library_ratio_warm_sorted",
                "cold_warm_ratio_mixed", "library_queries_per_s")) {
            assertTrue(summary.get(key).asDouble() > 0, key);
        }
        assertTrue(Files.size(work.resolve("bench-spark.json")) > 0);

        String[] again = run("bench-spark", "--contexts", "2", "--layers", "1", "--kv-heads", "2", "--tokens",
                "1024", "--head-dim", "32", "--rows", "2002", "--distinct-queries", "64", "--query-files", "3",
                "--work", work.toString());
        assertEquals("0", again[0], again[2]);
        assertTrue(again[1].contains("reusing the index set and the queries tables in " + work), again[1]);
        String[] last = again[1].strip().split("\n");
        assertEquals(0.0, new ObjectMapper().readTree(last[last.length - 1]).get("max_abs_diff_vs_library")
                .asDouble());
        String[] other = run("bench-spark", "--contexts", "2", "--layers", "1", "--kv-heads", "2", "--tokens",
                "1024", "--head-dim", "32", "--rows", "4000", "--distinct-queries", "64", "--query-files", "3",
                "--work", work.toString());
        assertEquals("2", other[0]);
        assertEquals("error: --work must not exist yet, or hold the tables and index set of an earlier bench-spark "
                + "run with the same generation options (contexts=2 layers=1 kv-heads=2 tokens=1024 head-dim=32 "
                + "rows=4000 distinct-queries=64 sparsity=0.95 seed=7 query-files=3); --work=" + work,
                other[2].strip());
    }

    @Test
    void theMixedOrderIsAPermutationThatSeparatesHeads() {
        long n = 1000;
        long stride = BenchSparkCommand.coprimeStride(n);
        Set<Long> items = new HashSet<>();
        int sameHead = 0;
        for (long i = 0; i < n; i++) {
            items.add((stride * i + 7) % n);
            if (i > 0 && (stride * i + 7) % n / 250 == (stride * (i - 1) + 7) % n / 250) {
                sameHead++;
            }
        }
        assertEquals(n, items.size());
        assertTrue(sameHead < n / 2, "consecutive rows mostly belong to different heads; same=" + sameHead);
    }

    @Test
    void aWorkFolderOfOtherInputsIsOneLine(@TempDir Path dir) {
        String[] result = run("bench-spark", "--work", dir.toString());
        assertEquals("2", result[0]);
        assertEquals("error: --work must not exist yet, or hold the tables and index set of an earlier bench-spark "
                + "run with the same generation options (contexts=4 layers=2 kv-heads=2 tokens=32768 head-dim=128 "
                + "rows=1000000 distinct-queries=2048 sparsity=0.95 seed=7 query-files=8); --work=" + dir,
                result[2].strip());
        assertFalse(result[1].contains("bench-spark:"));
    }
}
