package io.csattention.spark;

import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.File;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Build and decode with two executors in two separate JVMs ({@code local-cluster[2,1,1024]}: a standalone master and
 * two workers in this JVM, each worker launching its executor as a child process), so that the broadcast, the
 * serialization of options, accumulators and Hadoop configuration, and the per-executor cache cross processes; then
 * text contexts and text questions through {@code CSAttention.generate} with the bundled model and with the Llama
 * 3-structured GGUF fixture (BPE vocabulary, chat template), tokenized on the executors, against the library run on
 * the driver.
 *
 * <p>A worker builds the executor command from {@code SPARK_HOME/jars} (and, to learn the Scala version, looks for
 * {@code SPARK_HOME/launcher/target/scala-2.13}); Maven has no Spark distribution, so the test makes one: a temporary
 * home whose {@code jars/} links every jar of the test class path, and passes the module's class directories as
 * {@code spark.executor.extraClassPath}. With the system property {@code spark.testing} set, a worker takes its home
 * from {@code spark.test.home} instead of the environment; the property is set only while the cluster starts.
 */
class SeparateExecutorsTest {

    /**
     * The executors live for seconds, but they keep the server compiler: the GGUF fixture's forward pass runs the
     * Vector API kernels, which only C2 compiles to vector code (with {@code -XX:TieredStopAtLevel=1} its part of the
     * test took 78 s instead of 16 s).
     */
    static final String SHORT_LIVED_JVM = "-XX:+UseSerialGC -Xss1m";

    @TempDir
    static Path dir;

    @Test
    void buildAndDecodeAcrossTwoExecutorProcesses() throws IOException {
        long t0 = System.nanoTime();
        SparkSession spark = cluster(dir, "local-cluster[2,1,1024]", "768m", Map.of());
        System.out.printf("cluster up in %.1f s%n", (System.nanoTime() - t0) / 1e9);
        try {
            TestTensors data = new TestTensors(2, 1, 2, 200, 16, 11L);
            String index = dir.resolve("index").toString();
            Map<String, String> options = Map.of("centroids", "8", "broadcastThreshold", "0");
            IndexSet.Manifest built = CSAttention.buildIndexes(data.contextsTable(spark), index, options);
            System.out.printf("built at %.1f s%n", (System.nanoTime() - t0) / 1e9);
            assertEquals(4, built.heads().size());
            assertEquals(2L, built.counters().get("contextsPrefilled"));
            assertEquals(4L, built.counters().get("headsBuilt"));

            Dataset<Row> queries = data.queriesTable(spark, 8).repartition(4);
            CSAttentionMetrics metrics = new CSAttentionMetrics(spark.sparkContext());
            List<Row> rows = CSAttention.decode(queries, index, options, metrics).collectAsList();
            System.out.printf("decoded at %.1f s%n", (System.nanoTime() - t0) / 1e9);
            assertEquals(32, rows.size());
            assertEquals(32L, metrics.queriesDecoded.value());
            long loads = metrics.indexesLoaded.value();
            assertTrue(loads >= 4 && loads <= 8, "each of 2 executors loads each of 4 heads at most once; loads="
                    + loads);
            assertTrue(loads + metrics.cacheHits.value() <= 16, "4 tasks take each of 4 heads at most once; taken="
                    + (loads + metrics.cacheHits.value()));
            assertEquals(2, spark.sparkContext().getExecutorMemoryStatus().size() - 1,
                    "two executors besides the driver");

            textAnswersEqualTheLibrarys(spark);
            System.out.printf("generated from text at %.1f s%n", (System.nanoTime() - t0) / 1e9);
            ggufTextAnswersEqualTheLibrarys(spark);
            System.out.printf("generated from text with the GGUF fixture at %.1f s%n", (System.nanoTime() - t0) / 1e9);
        } finally {
            spark.stop();
            SparkSession.clearActiveSession();
            SparkSession.clearDefaultSession();
        }
    }

    /** Two text contexts, two text questions each, greedy csattention answers: the driver's library gives the same. */
    private static void textAnswersEqualTheLibrarys(SparkSession spark) throws IOException {
        String model;
        try {
            model = Path.of(SeparateExecutorsTest.class.getResource("/models/stories260K.bin").toURI()).toString();
        } catch (java.net.URISyntaxException e) {
            throw new IOException(e);
        }
        Path tokenizerFile = TextSparkTest.writeTokenizer(dir);
        io.csattention.model.LlamaModel library = io.csattention.model.ModelFiles.load(Path.of(model));
        io.csattention.model.Tokenizer tokenizer = io.csattention.model.Tokenizer.readLlama2c(tokenizerFile,
                library.config().vocabSize());
        java.util.SplittableRandom random = new java.util.SplittableRandom(31L);
        System.out.println("SeparateExecutorsTest text seed=31");
        List<Row> contexts = new ArrayList<>();
        List<Row> questions = new ArrayList<>();
        Map<Long, int[]> expected = new java.util.HashMap<>();
        Map<String, String> options = Map.of("sparsity", "0.75", "centroids", "8", "maxNewTokens", "6",
                "tokenizer", tokenizerFile.toString());
        for (int c = 0; c < 2; c++) {
            String context = TextSparkTest.text(random, 80);
            contexts.add(org.apache.spark.sql.RowFactory.create("doc-" + c, context));
            io.csattention.model.Session session = library.newSession();
            session.prefill(tokenizer.encode(context));
            session.useAttention(io.csattention.baseline.AttentionMethod.CSATTENTION,
                    CSAttentionOptions.parse(Map.of("sparsity", "0.75", "centroids", "8")).settings());
            for (int q = 0; q < 2; q++) {
                long id = 10L * c + q;
                String question = TextSparkTest.text(random, 5);
                questions.add(org.apache.spark.sql.RowFactory.create(id, "doc-" + c, question));
                int[] encoded = tokenizer.encode(question);
                io.csattention.model.Session fork = session.forkWithAttention();
                float[] logits = null;
                for (int i = 1; i < encoded.length; i++) {
                    logits = fork.decode(encoded[i]);
                }
                expected.put(id, io.csattention.model.Generation.run(fork, logits,
                        io.csattention.model.Sampler.greedy(), 6, library.stopTokens()).tokens());
            }
        }
        List<Row> answers = CSAttention.generate(
                spark.createDataFrame(contexts, TextSparkTest.TEXT_CONTEXTS).repartition(2),
                spark.createDataFrame(questions, TextSparkTest.TEXT_QUESTIONS).repartition(2), model, options)
                .collectAsList();
        assertEquals(4, answers.size());
        for (Row r : answers) {
            long id = r.getAs("question_id");
            int[] ids = r.getList(r.fieldIndex("generated")).stream().mapToInt(v -> (Integer) v).toArray();
            org.junit.jupiter.api.Assertions.assertArrayEquals(expected.get(id), ids, "question " + id);
            assertEquals(tokenizer.decode(expected.get(id)), r.getAs("text"), "question " + id);
        }
    }

    /**
     * The Llama 3-structured GGUF fixture (byte-level BPE vocabulary), written under the test's directory where the
     * executor processes read it: two text contexts, two text questions each in the chat template, greedy csattention
     * answers tokenized and detokenized on the executors; the driver's library gives the same ids and text.
     */
    private static void ggufTextAnswersEqualTheLibrarys(SparkSession spark) throws IOException {
        GgufTextSparkTest.Fixture f = GgufTextSparkTest.Fixture.of("llama3",
                io.csattention.model.ModelFixture.llama3().write(dir.resolve("llama3.gguf")));
        java.util.SplittableRandom random = new java.util.SplittableRandom(41L);
        System.out.println("SeparateExecutorsTest GGUF text seed=41");
        Map<String, String> index = Map.of("sparsity", "0.75", "centroids", "8");
        List<Row> contexts = new ArrayList<>();
        List<Row> questions = new ArrayList<>();
        Map<Long, int[]> expected = new java.util.HashMap<>();
        for (int c = 0; c < 2; c++) {
            String context = GgufTextSparkTest.words(random, 60);
            contexts.add(org.apache.spark.sql.RowFactory.create("doc-" + c, context));
            io.csattention.model.Session session = f.model().newSession();
            session.prefill(f.tokenizer().encode(context));
            session.useAttention(io.csattention.baseline.AttentionMethod.CSATTENTION,
                    CSAttentionOptions.parse(index).settings());
            for (int q = 0; q < 2; q++) {
                long id = 10L * c + q;
                String question = GgufTextSparkTest.words(random, 4) + "?";
                questions.add(org.apache.spark.sql.RowFactory.create(id, "doc-" + c, question));
                io.csattention.model.Session fork = session.forkWithAttention();
                float[] logits = null;
                for (int token : f.withoutBos(f.model().chatPrompt(question))) {
                    logits = fork.decode(token);
                }
                expected.put(id, io.csattention.model.Generation.run(fork, logits,
                        io.csattention.model.Sampler.greedy(), 4, f.model().stopTokens()).tokens());
            }
        }
        Map<String, String> options = new java.util.HashMap<>(index);
        options.put("maxNewTokens", "4");
        options.put("chatTemplate", "true");
        List<Row> answers = CSAttention.generate(
                spark.createDataFrame(contexts, TextSparkTest.TEXT_CONTEXTS).repartition(2),
                spark.createDataFrame(questions, TextSparkTest.TEXT_QUESTIONS).repartition(2), f.path(), options)
                .collectAsList();
        assertEquals(4, answers.size());
        for (Row r : answers) {
            long id = r.getAs("question_id");
            org.junit.jupiter.api.Assertions.assertArrayEquals(expected.get(id), TextSparkTest.ids(r),
                    "GGUF question " + id);
            assertEquals(f.tokenizer().decode(expected.get(id)), r.getAs("text"), "GGUF question " + id);
        }
    }

    /**
     * Stops the shared session and starts {@code master} (a {@code local-cluster[...]}), whose executors get
     * {@code executorMemory} of heap and {@code conf}, from a Spark home made under {@code dir}.
     */
    static SparkSession cluster(Path dir, String master, String executorMemory, Map<String, String> conf)
            throws IOException {
        SharedSpark.stop();
        Path home = sparkHome(dir);
        List<String> directories = classPath().stream().filter(p -> new File(p).isDirectory()).toList();
        String jvmFlags = ManagementFactory.getRuntimeMXBean().getInputArguments().stream()
                .filter(a -> a.startsWith("--add-opens") || a.startsWith("--add-modules") || a.startsWith("-Djdk.")
                        || a.startsWith("-Dio.netty"))
                .collect(Collectors.joining(" "));
        System.setProperty("spark.testing", "true");
        System.setProperty("spark.test.home", home.toString());
        try {
            SparkSession.Builder builder = SparkSession.builder()
                    .master(master)
                    .appName("csattention-separate-executors")
                    .config("spark.ui.enabled", "false")
                    .config("spark.executor.memory", executorMemory)
                    .config("spark.executor.extraClassPath", String.join(File.pathSeparator, directories))
                    .config("spark.executor.extraJavaOptions", jvmFlags + " " + SHORT_LIVED_JVM)
                    .config("spark.sql.shuffle.partitions", "2")
                    .config("spark.sql.adaptive.enabled", "false");
            conf.forEach(builder::config);
            return builder.getOrCreate();
        } finally {
            System.clearProperty("spark.testing");
            System.clearProperty("spark.test.home");
        }
    }

    private static List<String> classPath() {
        String path = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
        List<String> out = new ArrayList<>();
        for (String p : path.split(File.pathSeparator)) {
            if (!p.isBlank()) {
                out.add(p);
            }
        }
        return out;
    }

    /** A minimal Spark home: jars/ linking the test class path's jars, and the directory the launcher probes. */
    private static Path sparkHome(Path dir) throws IOException {
        Path home = dir.resolve("spark-home");
        Path jars = Files.createDirectories(home.resolve("jars"));
        Files.createDirectories(home.resolve("launcher/target/scala-2.13"));
        Files.createDirectories(home.resolve("conf"));
        try (var in = SeparateExecutorsTest.class.getResourceAsStream("/log4j2-test.properties")) {
            Files.copy(in, home.resolve("conf/log4j2.properties"));
        }
        for (String entry : classPath()) {
            Path jar = Path.of(entry);
            if (entry.endsWith(".jar") && Files.isRegularFile(jar)) {
                Path link = jars.resolve(jar.getFileName());
                if (!Files.exists(link)) {
                    Files.createSymbolicLink(link, jar.toAbsolutePath());
                }
            }
        }
        return home;
    }
}
