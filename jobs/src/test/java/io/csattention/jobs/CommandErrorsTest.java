package io.csattention.jobs;

import io.csattention.core.FloatMatrix;
import io.csattention.format.Npy;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;
import picocli.CommandLine.Model.OptionSpec;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.lang.reflect.Array;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The range check of every numeric option ({@link NumericOptions}), the output checks before any work, and refused
 * non-finite inputs: each case is one line on stderr, exit code 2, and no output written.
 */
class CommandErrorsTest {

    private static final Path MODEL = Path.of("../spark-csattention/src/test/resources/models/stories260K.bin");

    @TempDir
    Path dir;

    private record Result(int code, String out, String err) {
    }

    private static Result run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int code = Main.run(args, new PrintWriter(out, true), new PrintWriter(err, true));
        return new Result(code, out.toString(), err.toString());
    }

    private static void assertError(String message, String... args) {
        Result result = run(args);
        assertEquals("error: " + message, result.err().strip(), String.join(" ", args));
        assertEquals(2, result.code(), result.err());
    }

    /** A command's numeric option without a range would take any value: every one has a range, every default is in it. */
    @Test
    void everyNumericOptionHasARangeAndItsDefaultIsInIt() {
        List<String> problems = new ArrayList<>();
        int checked = 0;
        for (Map.Entry<String, CommandLine> command : new CommandLine(new Main()).getSubcommands().entrySet()) {
            for (OptionSpec option : command.getValue().getCommandSpec().options()) {
                if (!NumericOptions.isNumeric(option)) {
                    continue;
                }
                checked++;
                var range = NumericOptions.rangeOf(command.getKey(), option);
                if (range.isEmpty()) {
                    problems.add(command.getKey() + " " + option.longestName() + " has no range");
                    continue;
                }
                for (String value : defaults(option)) {
                    range.get().problem(option.longestName(), value)
                            .ifPresent(p -> problems.add(command.getKey() + " default: " + p));
                }
            }
        }
        assertEquals(List.of(), problems);
        assertTrue(checked > 60, "numeric options seen: " + checked);
    }

    private static List<String> defaults(OptionSpec option) {
        List<String> values = new ArrayList<>();
        if (option.defaultValue() != null && !option.defaultValue().startsWith("${")) {
            for (String v : option.defaultValue().split(",")) {
                values.add(v);
            }
            return values;
        }
        Object initial = option.initialValue();
        if (initial instanceof Collection<?> list) {
            list.forEach(v -> values.add(v.toString()));
        } else if (initial != null && initial.getClass().isArray()) {
            for (int i = 0; i < Array.getLength(initial); i++) {
                values.add(Array.get(initial, i).toString());
            }
        } else if (initial != null && !(option.type().isPrimitive() && option.defaultValue() == null
                && isZero(initial))) {
            values.add(initial.toString());
        }
        return values;
    }

    /** A primitive option without a default starts at 0 and is required or set by the command: not a default. */
    private static boolean isZero(Object value) {
        return value instanceof Number n && n.doubleValue() == 0;
    }

    @Test
    void theIssuesNumericCasesAreOneLineAndExitCode2() {
        assertError("--centroids must be an integer in [1, 65536]; --centroids=-3",
                "build-index", "--contexts", "x.parquet", "--out", dir.resolve("i").toString(), "--centroids", "-3");
        assertError("--tokens must be an integer in [16, 16777216]; --tokens=2000000000",
                "eval-synthetic", "--tokens", "2000000000");
        assertError("--queries must be an integer in [1, 1048576]; --queries=2000000000",
                "eval-synthetic", "--queries", "2000000000");
        assertError("--threads must be an integer in [1, 1024]; --threads=100000",
                "bench", "--threads", "100000", "--out", dir.resolve("b").toString());
        assertError("--threads must be an integer in [1, 1024]; --threads=0",
                "bench", "--threads", "1,0", "--out", dir.resolve("b").toString());
        assertError("--sparsity must be a number in (0, 1); --sparsity=NaN",
                "generate", "--model", MODEL.toString(), "--prompt-tokens", "1", "--max-new-tokens", "2",
                "--sparsity", "NaN");
        assertError("--max-new-tokens must be an integer in [1, 16777216]; --max-new-tokens=0",
                "generate", "--model", MODEL.toString(), "--prompt-tokens", "1", "--max-new-tokens", "0");
        assertError("--subspaces must be an integer in [1, 255]; --subspaces=many",
                "eval-synthetic", "--subspaces", "many");
        assertError("--head-dim must be an integer in [4, 4096]; --head-dim=0", "bench", "--head-dim", "0");
        assertError("--rescore-factor must be 0 (no re-scoring) or in [1, 1000]; --rescore-factor=0.5",
                "decode", "--queries", "q", "--index", "i", "--out", "o", "--rescore-factor", "0.5");
        assertError("--top-p must be in (0, 1]; --top-p=1.5",
                "generate", "--model", MODEL.toString(), "--prompt-tokens", "1", "--max-new-tokens", "2",
                "--top-p", "1.5");
        assertError("--context-tokens must be an integer in [1, 16777216]; --context-tokens=-1",
                "dump-qkv", "--model", MODEL.toString(), "--prompt-tokens", "1", "--context-tokens", "-1", "--out",
                dir.resolve("q").toString());
        assertError("--centroids must be an integer in [1, 65536]; --centroids=0", "gpu-bench", "--centroids", "0");
        // within every range, but one head of 2^24 tokens x 4096 dimensions is no Java array
        assertError("--tokens x --head-dim must be at most 2147483639 floats (one Java array); --tokens x "
                + "--head-dim=68719476736", "eval-synthetic", "--tokens", "16777216", "--head-dim", "4096");
        assertError("--queries x --tokens must be at most 2147483639 floats (one Java array); --queries x "
                + "--tokens=17592186044416", "eval-synthetic", "--tokens", "16777216", "--head-dim", "4",
                "--queries", "1048576");
        assertFalse(Files.exists(dir.resolve("i")));
        assertFalse(Files.exists(dir.resolve("b")));
    }

    @Test
    void aHeadLargerThanTheHeapIsOneLineNotAnOutOfMemoryError() {
        // 4M tokens x 256 dimensions: 4 GiB per matrix, five of them, beyond the test JVM's heap
        Result result = run("eval-synthetic", "--tokens", "4194304", "--head-dim", "256");
        assertEquals(2, result.code(), result.err());
        assertTrue(result.err().startsWith("error: eval-synthetic needs about 20480 MiB of heap for --tokens x "
                + "--head-dim = 1073741824 floats, more than the JVM's maximum (raise -Xmx); max heap MiB="),
                result.err());
        assertEquals(1, result.err().strip().split("\n").length, result.err());
    }

    @Test
    void benchRefusesNonFiniteKeysNamingTheFileAndTheFirstBadValue() throws IOException {
        Path keys = matrix("K.npy", 64, 8, 1, 5, 3);
        Path values = matrix("V.npy", 64, 8, 2, -1, 0);
        Path prefill = matrix("PQ.npy", 32, 8, 3, -1, 0);
        Path queries = matrix("Q.npy", 4, 8, 4, -1, 0);
        Path out = dir.resolve("bench");
        assertError("--keys " + keys + " must hold finite values; --keys " + keys + "[5,3]=NaN",
                "bench", "--keys", keys.toString(), "--values", values.toString(), "--prefill-queries",
                prefill.toString(), "--queries", queries.toString(), "--out", out.toString(), "--repeats", "1");
        assertFalse(Files.exists(out));
    }

    /** A seeded Gaussian matrix with NaN at (badRow, badCol) when badRow >= 0. */
    private Path matrix(String name, int rows, int cols, long seed, int badRow, int badCol) throws IOException {
        SplittableRandom random = new SplittableRandom(seed);
        float[] data = new float[rows * cols];
        for (int i = 0; i < data.length; i++) {
            data[i] = (float) random.nextGaussian();
        }
        if (badRow >= 0) {
            data[badRow * cols + badCol] = Float.NaN;
            data[(rows - 1) * cols] = Float.POSITIVE_INFINITY;
        }
        Path file = dir.resolve(name);
        Npy.write(file, new FloatMatrix(rows, cols, data));
        return file;
    }

    @Test
    void outIsCheckedBeforeAnyWork() throws IOException {
        Path full = Files.createDirectories(dir.resolve("full"));
        Files.writeString(full.resolve("keep.txt"), "earlier results");
        // a bench of 2^24 tokens would run for minutes: the check comes first
        assertError("--out must be a new or empty directory; --out=" + full,
                "bench", "--tokens", "16777216", "--head-dim", "4", "--out", full.toString());
        Path file = Files.writeString(dir.resolve("a-file"), "x");
        Path under = file.resolve("bench");
        assertError("--out must be in a writable directory (" + file + " is not); --out=" + under,
                "bench", "--tokens", "64", "--out", under.toString());
        // dump-qkv checks --out before it loads the model (which is missing here)
        assertError("--out must be a new or empty directory; --out=" + full,
                "dump-qkv", "--model", dir.resolve("missing.bin").toString(), "--prompt-tokens", "1",
                "--context-tokens", "8", "--out", full.toString());
        assertError("--out must be a new or empty directory; --out=" + full,
                "eval-synthetic", "--tokens", "16777216", "--head-dim", "4", "--out", full.toString());
        assertEquals(List.of("keep.txt"), Files.list(full).map(p -> p.getFileName().toString()).toList());
    }
}
