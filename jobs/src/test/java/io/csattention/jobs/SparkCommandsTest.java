package io.csattention.jobs;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The Spark commands end to end on the embedded local session, and their one-line errors. */
class SparkCommandsTest {

    @TempDir
    Path dir;

    record Result(int code, String out, String err) {
    }

    static Result run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int code = Main.run(args, new PrintWriter(out, true), new PrintWriter(err, true));
        return new Result(code, out.toString(), err.toString());
    }

    @Test
    void everySparkCommandHasHelp() {
        for (String command : new String[] {"build-index", "decode", "demo"}) {
            Result r = run(command, "--help");
            assertEquals(0, r.code(), command);
            assertTrue(r.out().startsWith("Usage: csattention-jobs " + command), r.out());
        }
    }

    @Test
    void demoThenBuildIndexAndDecodeOnItsTables() throws Exception {
        Path demo = dir.resolve("demo");
        Result r = run("demo", "--out", demo.toString(), "--contexts", "2", "--layers", "1", "--kv-heads", "2",
                "--tokens", "384", "--head-dim", "16", "--queries", "6", "--model-contexts", "1", "--model-tokens", "48",
                "--questions", "1", "--question-tokens", "4", "--new-tokens", "4");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("build-index : 20 heads of 1 contexts (prefill on the executors"), r.out());
        assertTrue(r.out().contains("agreement   : csattention "), r.out());
        assertTrue(Files.isDirectory(demo.resolve("answers.parquet")));
        assertTrue(r.out().contains("build-index : 4 heads of 2 contexts"), r.out());
        assertTrue(r.out().contains("decode      : 24 rows"), r.out());
        assertTrue(r.out().contains("recall      : mean "), r.out());
        assertTrue(Files.isDirectory(demo.resolve("decoded.parquet")));

        String index = dir.resolve("index").toString();
        r = run("build-index", "--contexts", demo.resolve("contexts.parquet").toString(), "--out", index,
                "--centroids", "8");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains(": 4 heads of 2 contexts"), r.out());

        r = run("build-index", "--contexts", demo.resolve("model-contexts.parquet").toString(), "--model",
                demo.resolve("stories260K.bin").toString(), "--out", dir.resolve("model-index").toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains(": 20 heads of 1 contexts"), r.out());

        String decoded = dir.resolve("decoded.parquet").toString();
        r = run("decode", "--queries", demo.resolve("queries.parquet").toString(), "--index", index, "--out",
                decoded, "--with-selected");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().startsWith("decoded 24 query rows into " + decoded), r.out());

        r = run("decode", "--queries", dir.resolve("missing.parquet").toString(), "--index", index, "--out",
                dir.resolve("other.parquet").toString());
        assertEquals(2, r.code(), r.err());
        assertTrue(r.err().startsWith("error: [PATH_NOT_FOUND] Path does not exist: "), r.err());
    }

    @Test
    void badInputEndsWithOneLine() {
        Result r = run("build-index", "--contexts", "x.parquet", "--out", dir.resolve("i").toString(),
                "--sparsity", "2");
        assertEquals(2, r.code());
        assertEquals("error: sparsity must be in (0, 1); sparsity=2.0", r.err().strip());
        r = run("decode", "--queries", "q.parquet", "--index", "i", "--out", "o", "--option", "cacheBudget=many");
        assertEquals(2, r.code());
        assertEquals("error: cacheBudget must be a size in bytes such as 512m or 2g; cacheBudget=many",
                r.err().strip());
    }
}
