package io.csattention.jobs;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.csattention.core.FloatMatrix;
import io.csattention.format.Npy;
import io.csattention.format.NpyArray;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class EvalTensorsCommandTest {

    private static final long SEED = 3L;

    @TempDir
    Path dir;

    private Path keys;
    private Path values;
    private Path prefill;
    private Path queries;

    @BeforeEach
    void writeInputs() throws IOException {
        keys = write("K.npy", 600, 16, SEED);
        values = write("V.npy", 600, 16, SEED + 1);
        prefill = write("PQ.npy", 300, 16, SEED + 2);
        queries = write("Q.npy", 9, 16, SEED + 3);
    }

    @Test
    void writesEveryMethodsArraysAndTheSummary() throws IOException {
        Path out = dir.resolve("out");
        Result result = run("eval-tensors", "--keys", keys, "--values", values, "--prefill-queries", prefill,
                "--queries", queries, "--sparsity", "0.9", "--methods", "csattention,quest,keycluster,oracle,full",
                "--out", out);
        assertEquals(0, result.code, result.err);
        for (String method : List.of("csattention", "quest", "keycluster", "oracle", "full")) {
            NpyArray selected = Npy.read(out.resolve(method).resolve("selected.npy"));
            assertEquals(9, selected.rows());
            assertEquals(method.equals("full") ? 600 : 60, selected.cols(), method);
            assertEquals(9, Npy.readMatrix(out.resolve(method).resolve("output.npy")).rows());
        }
        JsonNode summary = new ObjectMapper().readTree(out.resolve("summary.json").toFile());
        assertEquals(1.0, summary.at("/methods/oracle/recall_mean").asDouble(), 1e-12);
        assertEquals(0.0, summary.at("/methods/full/relative_error_mean").asDouble(), 1e-6);
        for (String key : List.of("recall_mean", "recall_p10", "attention_mass_recall", "relative_error_mean",
                "relative_error_p90", "index_build_ms", "decode_us_per_query")) {
            assertTrue(summary.at("/methods/csattention/" + key).isNumber(), key);
        }
        assertTrue(result.out.contains("csattention"), result.out);
    }

    @Test
    void mismatchedRowsNameTheFlagAndLeaveNoOutput() throws IOException {
        Path shortValues = write("V2.npy", 599, 16, SEED);
        Path out = dir.resolve("bad");
        Result result = run("eval-tensors", "--keys", keys, "--values", shortValues, "--prefill-queries", prefill,
                "--queries", queries, "--out", out);
        assertEquals(2, result.code);
        assertEquals("error: --values must have as many rows as --keys (600); --values rows=599",
                result.err.strip());
        assertFalse(Files.exists(out));
        try (var entries = Files.list(dir)) {
            assertTrue(entries.noneMatch(p -> p.getFileName().toString().contains(".partial-")));
        }
    }

    @Test
    void badInputGivesOneLineAndExitCodeTwo() throws IOException {
        Path notNpy = dir.resolve("text.npy");
        Files.writeString(notNpy, "not numpy");
        Path out = dir.resolve("o");
        assertOneLine("error: " + notNpy + ": not a .npy file (missing the \\x93NUMPY magic)",
                run("eval-tensors", "--keys", notNpy, "--values", values, "--prefill-queries", prefill,
                        "--queries", queries, "--out", out));
        assertOneLine("error: --sparsity must be in (0, 1); --sparsity=1.5",
                run("eval-tensors", "--keys", keys, "--values", values, "--prefill-queries", prefill,
                        "--queries", queries, "--out", out, "--sparsity", "1.5"));
        assertOneLine("error: unknown method 'bogus'; expected one of full,oracle,quest,keycluster,csattention,csattention_group",
                run("eval-tensors", "--keys", keys, "--values", values, "--prefill-queries", prefill,
                        "--queries", queries, "--out", out, "--methods", "csattention,bogus"));
        assertOneLine("error: budget must be >= sink + window = 70 (raise sparsity's budget or lower --sink/--window);"
                        + " budget=30",
                run("eval-tensors", "--keys", keys, "--values", values, "--prefill-queries", prefill,
                        "--queries", queries, "--out", out, "--sink", "10", "--window", "60"));
        Path wrongDim = write("Q8.npy", 4, 8, SEED);
        assertOneLine("error: --queries must have the dimension of --keys (16); --queries d=8",
                run("eval-tensors", "--keys", keys, "--values", values, "--prefill-queries", prefill,
                        "--queries", wrongDim, "--out", out));
        float[] data = new float[16 * 600];
        data[17] = Float.NaN;
        Path nan = dir.resolve("nan.npy");
        Npy.write(nan, new FloatMatrix(600, 16, data));
        assertOneLine("error: --keys " + nan + " must hold finite values; --keys " + nan + "[1,1]=NaN",
                run("eval-tensors", "--keys", nan, "--values", values, "--prefill-queries", prefill,
                        "--queries", queries, "--out", out));
        assertFalse(Files.exists(out));
    }

    @Test
    void gpuBackendWithoutAUsableDeviceIsOneLine() {
        String reason = io.csattention.device.Backends.gpuUnavailableReason(0);
        org.junit.jupiter.api.Assumptions.assumeTrue(reason != null, "a usable GPU is present");
        Path out = dir.resolve("gpu");
        assertOneLine("error: device gpu needs a usable CUDA device: " + reason + "; device=gpu",
                run("eval-tensors", "--keys", keys, "--values", values, "--prefill-queries", prefill,
                        "--queries", queries, "--out", out, "--device", "gpu"));
        assertFalse(Files.exists(out));
    }

    private static void assertOneLine(String expected, Result result) {
        assertEquals(2, result.code, result.err);
        assertEquals(expected, result.err.strip());
    }

    private Path write(String name, int rows, int cols, long seed) throws IOException {
        SplittableRandom random = new SplittableRandom(seed);
        float[] data = new float[rows * cols];
        for (int i = 0; i < data.length; i++) {
            data[i] = (float) (random.nextDouble() * 2 - 1);
        }
        Path file = dir.resolve(name);
        Npy.write(file, new FloatMatrix(rows, cols, data));
        return file;
    }

    record Result(int code, String out, String err) {
    }

    static Result run(Object... args) {
        List<String> strings = new ArrayList<>();
        for (Object a : args) {
            strings.add(a.toString());
        }
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int code = Main.run(strings.toArray(String[]::new), new PrintWriter(out, true), new PrintWriter(err, true));
        return new Result(code, out.toString(), err.toString());
    }
}
