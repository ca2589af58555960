package io.csattention.jobs;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A tiny sweep end to end (no timing assertions: the bench reports ratios, the test checks the contract). */
class BenchCommandTest {

    private static String[] run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int code = Main.run(args, new PrintWriter(out, true), new PrintWriter(err, true));
        return new String[] {Integer.toString(code), out.toString(), err.toString()};
    }

    @Test
    void writesCsvJsonChartsAndEndsWithTheJsonSummary(@TempDir Path dir) throws Exception {
        String[] result = run("bench", "--tokens", "512,1024", "--sparsity", "0.9,0.95", "--query-count", "6",
                "--repeats", "1", "--threads", "1,2", "--head-dim", "32", "--out", dir.toString(), "--json");
        assertEquals("0", result[0], result[2]);
        for (String file : List.of("bench.csv", "bench.json", "latency_vs_context.png", "recall_vs_sparsity.png",
                "speedup_vs_full.png")) {
            assertTrue(Files.size(dir.resolve(file)) > 0, file);
        }
        List<String> csv = Files.readAllLines(dir.resolve("bench.csv"));
        assertEquals(BenchRow.CSV_HEADER, csv.get(0));
        // 2 contexts x 2 sparsities x 5 methods x 2 thread counts
        assertEquals(1 + 40, csv.size());

        String[] lines = result[1].strip().split("\n");
        JsonNode summary = new ObjectMapper().readTree(lines[lines.length - 1]);
        assertEquals(0.95, summary.get("sparsity").asDouble());
        assertEquals(1, summary.get("threads").asInt());
        for (String tokens : List.of("512", "1024")) {
            JsonNode context = summary.get("contexts").get(tokens);
            assertTrue(context.get("speedup_vs_full").asDouble() > 0, tokens);
            assertTrue(context.get("speedup_vs_quest").asDouble() > 0, tokens);
            double recall = context.get("recall").asDouble();
            assertTrue(recall > 0 && recall <= 1, "recall " + recall);
        }
        JsonNode document = new ObjectMapper().readTree(dir.resolve("bench.json").toFile());
        assertEquals(40, document.get("rows").size());
    }

    @Test
    void oracleRecallIsOneAndFullIsExact(@TempDir Path dir) throws Exception {
        String[] result = run("bench", "--tokens", "300", "--sparsity", "0.9", "--methods", "oracle,full",
                "--query-count", "3", "--repeats", "1", "--threads", "1", "--head-dim", "16", "--out",
                dir.toString());
        assertEquals("0", result[0], result[2]);
        List<String> csv = Files.readAllLines(dir.resolve("bench.csv"));
        String oracle = csv.stream().filter(l -> l.contains(",oracle,")).findFirst().orElseThrow();
        assertEquals("1.00000", oracle.split(",")[10]);
    }

    @Test
    void recallWithoutOracleAmongTheMethods(@TempDir Path dir) throws Exception {
        String[] result = run("bench", "--tokens", "300", "--sparsity", "0.9", "--methods", "quest,full",
                "--query-count", "3", "--repeats", "1", "--threads", "1", "--head-dim", "16", "--out",
                dir.toString());
        assertEquals("0", result[0], result[2]);
        String quest = Files.readAllLines(dir.resolve("bench.csv")).stream().filter(l -> l.contains(",quest,"))
                .findFirst().orElseThrow();
        double recall = Double.parseDouble(quest.split(",")[10]);
        assertTrue(recall > 0 && recall <= 1, "recall " + recall);
    }

    @Test
    void badArgumentsExitTwoWithOneLine(@TempDir Path dir) {
        String[] result = run("bench", "--sparsity", "1.5", "--out", dir.toString());
        assertEquals("2", result[0]);
        assertEquals("error: --sparsity must be in (0, 1); --sparsity=1.5", result[2].strip());

        result = run("bench", "--keys", "k.npy", "--out", dir.toString());
        assertEquals("2", result[0]);
        assertEquals("error: --keys, --values, --prefill-queries and --queries must be given together; "
                + "missing=--values,--prefill-queries,--queries", result[2].strip());

        result = run("bench", "--methods", "nope", "--tokens", "64", "--out", dir.toString());
        assertEquals("2", result[0]);
        assertTrue(result[2].startsWith("error: unknown method 'nope'"), result[2]);
    }
}
