package io.csattention.jobs;

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
        assertTrue(r.out().contains("as text tables tokenized on the executors"), r.out());
        assertTrue(r.out().contains("text        : question 0 of story-0 -> \""), r.out());
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

        String model = demo.resolve("stories260K.bin").toString();
        String tokenizer = demo.resolve("stories260K.stand-in-tokenizer.bin").toString();
        r = run("build-index", "--contexts", demo.resolve("model-contexts.parquet").toString(), "--model", model,
                "--tokenizer", tokenizer, "--out", dir.resolve("model-index").toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains(": 20 heads of 1 contexts"), r.out());

        // the generate job on the demo's text tables, with the demo's settings, writes the demo's answers
        String answers = dir.resolve("answers.parquet").toString();
        r = run("generate", "--model", model, "--tokenizer", tokenizer, "--contexts",
                demo.resolve("model-contexts.parquet").toString(), "--questions",
                demo.resolve("questions.parquet").toString(), "--out", answers, "--attention", "csattention",
                "--sparsity", "0.75", "--max-new-tokens", "4");
        assertEquals(0, r.code(), r.err());
        assertEquals("answered 1 questions into " + answers, r.out().substring(0, r.out().indexOf(" in ")),
                r.out());
        assertEquals(answerTexts(demo.resolve("answers.parquet")), answerTexts(Path.of(answers)));
        r = run("generate", "--model", model, "--tokenizer", tokenizer, "--contexts",
                demo.resolve("model-contexts.parquet").toString(), "--questions",
                demo.resolve("contexts.parquet").toString(), "--out", dir.resolve("never.parquet").toString(),
                "--max-new-tokens", "4");
        assertEquals(2, r.code(), r.err());
        assertEquals("error: questions table must have exactly one of the columns text and tokens; columns=[context_id"
                + ", layer, kv_head, head_dim, keys, values, prefill_queries]", r.err().strip());
        assertFalse(Files.exists(dir.resolve("never.parquet")));

        // an empty question: one line naming it and nothing written, or with --on-error route its error row
        String bad = dir.resolve("bad-questions.parquet").toString();
        writeQuestions(bad, "story-0");
        r = run("generate", "--model", model, "--tokenizer", tokenizer, "--contexts",
                demo.resolve("model-contexts.parquet").toString(), "--questions", bad, "--out",
                dir.resolve("failed.parquet").toString(), "--max-new-tokens", "4");
        assertEquals(2, r.code(), r.err());
        String[] lines = r.err().strip().split("\n");
        assertEquals("error: question text must hold at least one character (question_id=2); text=''",
                lines[lines.length - 1]);
        assertFalse(Files.exists(dir.resolve("failed.parquet")));
        String routed = dir.resolve("routed.parquet").toString();
        r = run("generate", "--model", model, "--tokenizer", tokenizer, "--contexts",
                demo.resolve("model-contexts.parquet").toString(), "--questions", bad, "--out", routed,
                "--max-new-tokens", "4", "--on-error", "route");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().startsWith("answered 1 questions into " + routed), r.out());
        assertTrue(r.out().contains("(1 error rows)"), r.out());

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

    /** Writes questions 1 (two characters) and 2 (empty) about {@code context} as a text questions table. */
    private static void writeQuestions(String path, String context) {
        org.apache.spark.sql.SparkSession spark = SparkJob.session("csattention-test-write");
        try {
            org.apache.spark.sql.types.StructType schema = new org.apache.spark.sql.types.StructType()
                    .add("question_id", org.apache.spark.sql.types.DataTypes.LongType)
                    .add("context_id", org.apache.spark.sql.types.DataTypes.StringType)
                    .add("text", org.apache.spark.sql.types.DataTypes.StringType);
            spark.createDataFrame(List.of(org.apache.spark.sql.RowFactory.create(1L, context, "\u0150\u0151"),
                    org.apache.spark.sql.RowFactory.create(2L, context, "")), schema).write().parquet(path);
        } finally {
            spark.stop();
        }
    }

    /** question_id, generated ids and text of an answers table, in question order. */
    private static List<String> answerTexts(Path table) {
        org.apache.spark.sql.SparkSession spark = SparkJob.session("csattention-test-read");
        try {
            return spark.read().parquet(table.toString()).orderBy("question_id").collectAsList().stream()
                    .map(row -> row.getAs("question_id") + " " + row.getList(row.fieldIndex("generated")) + " "
                            + row.getAs("text")).toList();
        } finally {
            spark.stop();
        }
    }

    /**
     * build-index records the group size (4 query heads per KV head), decode takes the queries' query head and reads
     * KV head head / 4: its outputs are the library's on that KV head, in the input's row order.
     */
    @Test
    void decodeJobMapsQueryHeadsWithTheRecordedGroupSize() throws Exception {
        long seed = 20261202L;
        System.out.println("SparkCommandsTest seed=" + seed);
        int group = 4;
        int kvHeads = 2;
        int n = 2048;
        int d = 32;
        java.util.SplittableRandom random = new java.util.SplittableRandom(seed);
        org.apache.spark.sql.SparkSession spark = SparkJob.session("gqa-test");
        io.csattention.core.FloatMatrix[] keys = new io.csattention.core.FloatMatrix[kvHeads];
        io.csattention.core.FloatMatrix[] values = new io.csattention.core.FloatMatrix[kvHeads];
        io.csattention.core.FloatMatrix[] prefill = new io.csattention.core.FloatMatrix[kvHeads];
        java.util.List<org.apache.spark.sql.Row> contextRows = new java.util.ArrayList<>();
        for (int h = 0; h < kvHeads; h++) {
            keys[h] = gaussian(random, n, d, 1.0);
            values[h] = gaussian(random, n, d, 1.0);
            prefill[h] = gaussian(random, n, d, 2.0);
            contextRows.add(org.apache.spark.sql.RowFactory.create("doc", 0, h, d, keys[h].data(), values[h].data(),
                    prefill[h].data()));
        }
        org.apache.spark.sql.types.StructType contexts = new org.apache.spark.sql.types.StructType()
                .add("context_id", "string").add("layer", "int").add("kv_head", "int").add("head_dim", "int")
                .add("keys", "array<float>").add("values", "array<float>").add("prefill_queries", "array<float>");
        org.apache.spark.sql.types.StructType queries = new org.apache.spark.sql.types.StructType()
                .add("query_id", "long").add("context_id", "string").add("layer", "int").add("head", "int")
                .add("query", "array<float>");
        java.util.List<org.apache.spark.sql.Row> queryRows = new java.util.ArrayList<>();
        for (int i = 0; i < 24; i++) {
            int head = (i * 5) % (group * kvHeads);
            queryRows.add(org.apache.spark.sql.RowFactory.create((long) i, "doc", 0, head,
                    gaussian(random, 1, d, 2.0).data()));
        }
        String contextsPath = dir.resolve("gqa-contexts.parquet").toString();
        String queriesPath = dir.resolve("gqa-queries.parquet").toString();
        spark.createDataFrame(contextRows, contexts).write().parquet(contextsPath);
        spark.createDataFrame(queryRows, queries).coalesce(1).write().parquet(queriesPath);
        String index = dir.resolve("gqa-index").toString();
        Result r = run("build-index", "--contexts", contextsPath, "--out", index, "--query-heads-per-kv-head", "4");
        assertEquals(0, r.code(), r.err());
        String decoded = dir.resolve("gqa-decoded.parquet").toString();
        r = run("decode", "--queries", queriesPath, "--index", index, "--out", decoded);
        assertEquals(0, r.code(), r.err());
        spark = SparkJob.session("gqa-test");
        java.util.List<org.apache.spark.sql.Row> out = spark.read().parquet(decoded).collectAsList();
        io.csattention.spark.CSAttentionOptions options = io.csattention.spark.CSAttentionOptions.defaults();
        io.csattention.core.CSAttentionSettings settings = options.settings();
        io.csattention.core.KeyValueCache[] caches = new io.csattention.core.KeyValueCache[kvHeads];
        io.csattention.core.CSAttentionSelector[] selectors = new io.csattention.core.CSAttentionSelector[kvHeads];
        for (int h = 0; h < kvHeads; h++) {
            caches[h] = io.csattention.core.KeyValueCache.of(keys[h], values[h]);
            selectors[h] = new io.csattention.core.CSAttentionSelector(options.kernels(),
                    io.csattention.core.CSAttentionIndex.build(options.kernels(), keys[h], prefill[h], settings),
                    caches[h], settings.rescoreFactor());
        }
        double worst = 0;
        assertEquals(24, out.size());
        for (int i = 0; i < out.size(); i++) {
            org.apache.spark.sql.Row row = out.get(i);
            assertEquals((long) i, (long) row.getAs("query_id"), "row order");
            int head = row.getAs("head");
            int kv = head / group;
            assertEquals(kv, (int) row.getAs("kv_head"));
            io.csattention.core.KeyValueCache cache = caches[kv];
            io.csattention.core.CSAttentionSelector selector = selectors[kv];
            float[] query = (float[]) queryRows.get(i).get(4);
            float[] expected = new float[d];
            io.csattention.core.BlockDecoder.decodeBlock(options.kernels(), cache, selector, settings.plan(n), query,
                    0, 1, null, expected);
            java.util.List<Float> actual = row.getList(row.fieldIndex("output"));
            for (int j = 0; j < d; j++) {
                worst = Math.max(worst, Math.abs(expected[j] - actual.get(j)));
            }
        }
        assertTrue(worst <= 1e-6, "max abs difference to the library " + worst);
        r = run("decode", "--queries", queriesPath, "--index", index, "--out", dir.resolve("o2").toString(),
                "--query-heads-per-kv-head", "2");
        assertEquals(2, r.code(), r.err());
        assertEquals("error: --query-heads-per-kv-head must be the group size the index set " + index
                + " recorded, 4 (context_id=doc, layer=0); --query-heads-per-kv-head=2", r.err().strip());
    }

    private static io.csattention.core.FloatMatrix gaussian(java.util.SplittableRandom r, int rows, int d,
                                                            double scale) {
        float[] data = new float[rows * d];
        for (int i = 0; i < data.length; i++) {
            data[i] = (float) (r.nextGaussian() * scale);
        }
        return new io.csattention.core.FloatMatrix(rows, d, data);
    }

    @Test
    void badInputEndsWithOneLine() {
        Result r = run("build-index", "--contexts", "x.parquet", "--out", dir.resolve("i").toString(),
                "--sparsity", "2");
        assertEquals(2, r.code());
        assertEquals("error: --sparsity must be in (0, 1); --sparsity=2", r.err().strip());
        r = run("build-index", "--contexts", "x.parquet", "--out", dir.resolve("i").toString(),
                "--option", "listFraction=1.5");
        assertEquals(2, r.code());
        assertEquals("error: listFraction must be in (0, 1] or 0 for automatic; listFraction=1.5", r.err().strip());
        r = run("build-index", "--contexts", "x.parquet", "--out", dir.resolve("i").toString(),
                "--list-fraction", "1.5");
        assertEquals("error: --list-fraction must be in (0, 1] or 0 for automatic; --list-fraction=1.5",
                r.err().strip());
        r = run("decode", "--queries", "q.parquet", "--index", "i", "--out", "o", "--option", "cacheBudget=many");
        assertEquals(2, r.code());
        assertEquals("error: cacheBudget must be a size in bytes such as 512m or 2g; cacheBudget=many",
                r.err().strip());
    }

    /** spark-home copies the jar it runs from: from the build's class directory it says so, before writing. */
    @Test
    void sparkHomeNeedsANewFolderAndTheJobsJar() throws Exception {
        Path exists = Files.createDirectories(dir.resolve("existing-home"));
        Result r = run("spark-home", "--out", exists.toString());
        assertEquals(2, r.code());
        assertEquals("error: --out must not exist yet; --out=" + exists, r.err().strip());
        Path classes = Path.of(SparkHomeCommand.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        Path home = dir.resolve("home");
        r = run("spark-home", "--out", home.toString());
        assertEquals(2, r.code());
        assertEquals("error: spark-home must run from csattention-jobs.jar (java -jar jobs/target/csattention-jobs.jar "
                + "spark-home ...); running from=" + classes, r.err().strip());
        assertFalse(Files.exists(home));
    }

    /**
     * A failed decode or build leaves no output behind (a rerun is not refused with "path already exists"), an
     * executor's error is the one line of its root cause, and an existing decode output is refused before any work.
     */
    @Test
    void failedJobsLeaveNothingBehindAndSayTheRootCause() throws Exception {
        long seed = 20260314L;
        System.out.println("SparkCommandsTest seed=" + seed);
        java.util.SplittableRandom random = new java.util.SplittableRandom(seed);
        int n = 256;
        int d = 16;
        org.apache.spark.sql.SparkSession spark = SparkJob.session("failure-test");
        org.apache.spark.sql.types.StructType contexts = new org.apache.spark.sql.types.StructType()
                .add("context_id", "string").add("layer", "int").add("kv_head", "int").add("head_dim", "int")
                .add("keys", "array<float>").add("values", "array<float>").add("prefill_queries", "array<float>");
        String good = dir.resolve("good.parquet").toString();
        spark.createDataFrame(java.util.List.of(org.apache.spark.sql.RowFactory.create("doc", 0, 0, d,
                gaussian(random, n, d, 1).data(), gaussian(random, n, d, 1).data(),
                gaussian(random, n, d, 2).data())), contexts).write().parquet(good);
        // the values hold one row fewer than the keys: found on the executor that builds the head
        String bad = dir.resolve("bad.parquet").toString();
        spark.createDataFrame(java.util.List.of(org.apache.spark.sql.RowFactory.create("doc", 0, 0, d,
                gaussian(random, n, d, 1).data(), gaussian(random, n - 1, d, 1).data(),
                gaussian(random, n, d, 2).data())), contexts).write().parquet(bad);
        org.apache.spark.sql.types.StructType queries = new org.apache.spark.sql.types.StructType()
                .add("query_id", "long").add("context_id", "string").add("layer", "int").add("head", "int")
                .add("query", "array<float>");
        // query 7 has half the head's dimension
        String badQueries = dir.resolve("bad-queries.parquet").toString();
        spark.createDataFrame(java.util.List.of(
                org.apache.spark.sql.RowFactory.create(6L, "doc", 0, 0, gaussian(random, 1, d, 2).data()),
                org.apache.spark.sql.RowFactory.create(7L, "doc", 0, 0, gaussian(random, 1, d / 2, 2).data())),
                queries).coalesce(1).write().parquet(badQueries);

        Path failedIndex = dir.resolve("failed-index");
        Result r = run("build-index", "--contexts", bad, "--out", failedIndex.toString());
        System.out.println("build-index on the bad table: " + r.err());
        assertEquals(2, r.code(), r.err());
        assertEquals(1, r.err().strip().split("\n").length, r.err());
        assertTrue(!Files.exists(failedIndex), "the failed build left " + failedIndex);

        // the same failure in a JVM of its own, as under java -jar: Spark's task failure reports (with their stack
        // traces) do not come before the error line on stderr
        Path separate = dir.resolve("separate-index");
        Process process = new ProcessBuilder(javaCommand("build-index", "--contexts", bad, "--out",
                separate.toString())).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
        String stderr = new String(process.getErrorStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
        assertEquals(2, process.waitFor(), stderr);
        // what is left once the console progress bar (redrawn with carriage returns) is taken out
        java.util.List<String> lines = stderr.strip().lines().map(String::strip)
                .filter(l -> !l.isEmpty() && !l.startsWith("[Stage ")).toList();
        assertEquals("error: values must have as many rows as keys 256 (context_id=doc layer=0 kv_head=0); "
                + "values.rows=255", lines.get(lines.size() - 1), stderr);
        assertTrue(lines.size() <= 2 && lines.stream().noneMatch(l -> l.startsWith("at ")), stderr);
        assertTrue(!Files.exists(separate), "the failed build left " + separate);

        String index = dir.resolve("index").toString();
        r = run("build-index", "--contexts", good, "--out", index);
        assertEquals(0, r.code(), r.err());
        Path decoded = dir.resolve("decoded.parquet");
        r = run("decode", "--queries", badQueries, "--index", index, "--out", decoded.toString());
        System.out.println("decode of the bad queries: " + r.err());
        assertEquals(2, r.code(), r.err());
        assertEquals("error: query must have head_dim=16 values (query_id=7); query.length=8", r.err().strip());
        assertTrue(!Files.exists(decoded), "the failed decode left " + decoded);
        String badRow = r.err().strip();

        // a bad row in a JVM of its own: the one line, none of Spark's log; with --verbose Spark's INFO log too
        for (boolean verbose : new boolean[] {false, true}) {
            java.util.List<String> args = new java.util.ArrayList<>(java.util.List.of("decode", "--queries",
                    badQueries, "--index", index, "--out", decoded.toString()));
            if (verbose) {
                args.add("--verbose");
            }
            process = new ProcessBuilder(javaCommand(args.toArray(String[]::new)))
                    .redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
            stderr = new String(process.getErrorStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
            assertEquals(2, process.waitFor(), stderr);
            lines = stderr.strip().lines().map(String::strip)
                    .filter(l -> !l.isEmpty() && !l.startsWith("[Stage ")).toList();
            long info = lines.stream().filter(l -> l.matches("\\d\\d/\\d\\d/\\d\\d \\S+ INFO .*")).count();
            if (verbose) {
                // Spark's INFO log and its report of the failed task, the error line among them (shutdown hooks
                // log after it)
                assertTrue(lines.contains(badRow), stderr);
                assertTrue(info > 20 && stderr.contains(" INFO SparkContext: ")
                        && stderr.contains(" ERROR Executor: Exception in task "), stderr);
            } else {
                assertEquals(badRow, lines.get(lines.size() - 1), stderr);
                assertTrue(lines.size() <= 2 && info == 0 && lines.stream().noneMatch(l -> l.startsWith("at ")),
                        stderr);
            }
            assertTrue(!Files.exists(decoded), "the failed decode left " + decoded);
        }

        Files.createDirectories(decoded);
        r = run("decode", "--queries", badQueries, "--index", index, "--out", decoded.toString());
        assertEquals(2, r.code(), r.err());
        assertEquals("error: --out must not exist yet; --out=" + decoded, r.err().strip());
        assertTrue(Files.isDirectory(decoded), "an output the job did not create is kept");
    }

    /** {@code java io.csattention.jobs.Main args} with this JVM's class path and module flags. */
    private static java.util.List<String> javaCommand(String... args) {
        java.util.List<String> command = new java.util.ArrayList<>();
        command.add(ProcessHandle.current().info().command().orElse("java"));
        for (String flag : java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            if (flag.startsWith("--add-") || flag.startsWith("-Xmx")) {
                command.add(flag);
            }
        }
        command.add("-cp");
        command.add(System.getProperty("java.class.path"));
        command.add(Main.class.getName());
        command.addAll(java.util.List.of(args));
        return command;
    }
}
