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
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** bench-model end to end at a tiny size: the contract (JSON keys, files, bad input), no timing assertions. */
class BenchModelCommandTest {

    private static String[] run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int code = Main.run(args, new PrintWriter(out, true), new PrintWriter(err, true));
        return new String[] {Integer.toString(code), out.toString(), err.toString()};
    }

    @Test
    void printsTheTablesAndEndsWithTheJsonSummary(@TempDir Path dir) throws Exception {
        Path out = dir.resolve("bench-model");
        String[] result = run("bench-model", "--shape", "small", "--layers", "1", "--prefill-tokens", "32",
                "--decode-tokens", "2", "--batches", "1,4", "--batch-new-tokens", "2", "--context-tokens", "300",
                "--questions", "4", "--new-tokens", "3", "--sparsity", "0.95", "--out", out.toString());
        assertEquals("0", result[0], result[2]);
        String[] lines = result[1].strip().split("\n");
        JsonNode summary = new ObjectMapper().readTree(lines[lines.length - 1]);
        for (String key : List.of("decode_ms_per_token", "decode_limit_ms_per_token", "prefill_tokens_per_s")) {
            assertTrue(summary.get(key).asDouble() > 0, key);
        }
        assertTrue(summary.get("batched_tokens_per_s").get("4").asDouble() > 0);
        assertTrue(summary.get("batched_weight_gmacs").get("4").asDouble() > 0);
        if (io.csattention.kernel.Kernels.simd().isPresent()) {
            assertTrue(summary.get("fma_peak_gmacs").asDouble() > summary.get("batched_weight_gmacs").get("4")
                    .asDouble(), "the FMA peak is above what a product reaches");
        }
        assertTrue(summary.get("csattention_speedup_vs_full").get("300").asDouble() > 0);
        assertTrue(summary.get("csattention_group_speedup_vs_full").get("300").asDouble() > 0);
        assertEquals("f16", summary.get("kv_precision").asText());
        JsonNode row = summary.get("end_to_end").get("300");
        // float16 K and V (2 bytes each) of the context's 300 tokens, 1 layer x 2 KV heads x 64 dims
        assertEquals(2L * 2 * 300 * 2 * 64, row.get("kv_bytes").asLong());
        // the 4 forks' own rows held at once: 64 rows of room each (their 11 new tokens fit in it); the context's
        // 300 rows are shared, not copied
        assertEquals(4L * 2 * 2 * 64 * 2 * 64, row.get("full").get("forks_kv_peak_bytes").asLong());
        assertEquals(1.0, row.get("full").get("tokens_agreeing_with_full").asDouble());
        assertTrue(row.get("csattention_0.95").get("index_bytes").asLong() > 0);
        assertTrue(row.get("csattention_group_0.95").get("index_bytes").asLong() > 0);
        for (String file : List.of("summary.json", "batched_decode.png", "end_to_end.png")) {
            assertTrue(Files.size(out.resolve(file)) > 0, file);
        }
    }

    @Test
    void anUnknownShapeOrQuantOrATooLongContextIsOneLine(@TempDir Path dir) {
        Path out = dir.resolve("none");
        String[] shape = run("bench-model", "--shape", "gpt5", "--out", out.toString());
        assertEquals("2", shape[0]);
        assertEquals("error: --shape must be one of [llama32-1b, small]; --shape=gpt5", shape[2].strip());
        String[] quant = run("bench-model", "--quant", "q3_k", "--out", out.toString());
        assertEquals("error: --quant must be one of [q8_0, q4_k_m, q5_k_m]; --quant=q3_k", quant[2].strip());
        String[] method = run("bench-model", "--sparse-methods", "csattention,quest", "--out", out.toString());
        assertEquals("2", method[0]);
        assertEquals("error: --sparse-methods must name csattention or csattention_group; --sparse-methods=quest",
                method[2].strip());
        String[] context = run("bench-model", "--context-tokens", "131072", "--out", out.toString());
        assertEquals("2", context[0]);
        assertEquals("error: --context-tokens must leave room for the questions within the model's context length "
                + "131072; --context-tokens=131072", context[2].strip());
        String[] kv = run("bench-model", "--kv-precision", "f8", "--out", out.toString());
        assertEquals("2", kv[0]);
        assertEquals("error: --kv-precision must be one of f16, bf16, f32; kv-precision=f8", kv[2].strip());
        assertFalse(Files.exists(out));
    }
}
