package io.csattention.jobs;

import io.csattention.spark.IndexSet;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The README's standalone launch without a Spark distribution, as written: {@code spark-home} lays out a Spark home
 * from the shaded jar; a master and two workers start from its {@code bin/spark-class} as separate processes on
 * loopback; {@code build-index} and {@code decode} go through its {@code bin/spark-submit} to
 * {@code spark://127.0.0.1:PORT}. Each worker runs one executor of each job, so every head is built and every row
 * decoded in an executor process the worker launched from the Spark home. The index set and the decoded table equal
 * those of local mode (the same commands on the embedded {@code local[*]} session of this JVM): the same index files
 * byte for byte (their checksums), the same rows in the same order ({@code decode_nanos} aside).
 *
 * <p>Runs in failsafe after {@code package}, which sets {@code csattention.jobs.jar}:
 * {@code mvn -B -o -pl spark-csattention,jobs -Dtest=NONE -Dsurefire.failIfNoSpecifiedTests=false verify}.
 */
class StandaloneClusterTest {

    static final String LOOPBACK = "127.0.0.1";
    static final Duration CLUSTER_UP = Duration.ofSeconds(60);
    static final Duration JOB = Duration.ofSeconds(150);
    /**
     * JAVA_OPTS of the daemons and the drivers, which compute nothing the test compares (the executors build and
     * decode, with the JIT and flags that spark-defaults.conf gives them): short-lived JVMs on shared cores.
     */
    static final String SHORT_LIVED = "-XX:+UseSerialGC -XX:TieredStopAtLevel=1";

    @TempDir
    Path dir;

    private final Map<String, Process> processes = new LinkedHashMap<>();
    private final Map<String, Path> logs = new LinkedHashMap<>();

    @Test
    void buildAndDecodeOnAMasterAndTwoWorkersEqualLocalMode() throws Exception {
        String jarProperty = System.getProperty("csattention.jobs.jar");
        assertNotNull(jarProperty, "the shaded jar's path comes from failsafe after package (see the class comment)");
        Path jar = Path.of(jarProperty);
        assertTrue(Files.isRegularFile(jar), "no shaded jar at " + jar);
        long seed = 20261203L;
        System.out.println("StandaloneClusterTest seed=" + seed);
        String contexts = dir.resolve("contexts.parquet").toString();
        String queries = dir.resolve("queries.parquet").toString();
        writeTables(seed, contexts, queries);

        String localIndex = dir.resolve("local-index").toString();
        String localDecoded = dir.resolve("local-decoded.parquet").toString();
        assertEquals(0, Main.run(new String[] {"build-index", "--contexts", contexts, "--out", localIndex,
                "--centroids", "16"}, new PrintWriter(new StringWriter(), true), new PrintWriter(System.err, true)));
        assertEquals(0, Main.run(new String[] {"decode", "--queries", queries, "--index", localIndex, "--out",
                localDecoded}, new PrintWriter(new StringWriter(), true), new PrintWriter(System.err, true)));

        Path home = dir.resolve("spark-home");
        Process layout = new ProcessBuilder(javaHome() + "/bin/java", "-jar", jar.toString(), "spark-home", "--out",
                home.toString(), "--host", LOOPBACK).redirectErrorStream(true).start();
        String printed = new String(layout.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, layout.waitFor(), printed);
        String submit = home + "/bin/spark-submit";
        assertTrue(printed.contains("submit : " + submit + " --master spark://" + LOOPBACK + ":7077 --class "
                + Main.class.getName() + " " + home + "/jars/csattention-jobs.jar decode"), printed);
        assertTrue(Files.isExecutable(home.resolve("bin/spark-class")), printed);

        String clusterIndex = dir.resolve("cluster-index").toString();
        String clusterDecoded = dir.resolve("cluster-decoded.parquet").toString();
        long t0 = System.nanoTime();
        try {
            int port = freePort();
            int ui = freePort();
            String master = "spark://" + LOOPBACK + ":" + port;
            String sparkClass = home + "/bin/spark-class";
            start("master", "-Xmx256m " + SHORT_LIVED, sparkClass, "org.apache.spark.deploy.master.Master",
                    "--host", LOOPBACK, "--port", Integer.toString(port), "--webui-port", Integer.toString(ui));
            for (int w = 1; w <= 2; w++) {
                start("worker-" + w, "-Xmx256m " + SHORT_LIVED, sparkClass,
                        "org.apache.spark.deploy.worker.Worker", "--host", LOOPBACK, "--webui-port", "0", "--cores",
                        "1", "--memory", "1g", "--work-dir", dir.resolve("work-" + w).toString(), master);
            }
            awaitWorkers(ui, 2);
            System.out.printf("master and 2 workers up in %.1f s%n", (System.nanoTime() - t0) / 1e9);
            List<String> submitArgs = List.of(submit, "--master", master, "--conf", "spark.ui.enabled=false",
                    "--conf", "spark.executor.memory=640m", "--conf", "spark.cores.max=2", "--class",
                    Main.class.getName(), home + "/jars/csattention-jobs.jar");
            String built = job("build-index", submitArgs, "build-index", "--contexts", contexts, "--out",
                    clusterIndex, "--centroids", "16");
            assertTrue(built.contains(": 4 heads of 2 contexts"), built);
            System.out.printf("built at %.1f s%n", (System.nanoTime() - t0) / 1e9);
            String decoded = job("decode", submitArgs, "decode", "--queries", queries, "--index", clusterIndex,
                    "--out", clusterDecoded);
            assertTrue(decoded.contains("decoded " + QUERIES + " query rows into " + clusterDecoded), decoded);
            System.out.printf("decoded at %.1f s%n", (System.nanoTime() - t0) / 1e9);
            for (int w = 1; w <= 2; w++) {
                assertEquals(2, executorLogs(dir.resolve("work-" + w)).size(),
                        "worker " + w + " ran one executor of each of the 2 jobs");
            }
        } catch (Throwable failure) {
            printLogs();
            throw failure;
        } finally {
            stopAll();
        }

        assertEquals(heads(localIndex), heads(clusterIndex), "the index files of local mode and of the cluster");
        assertFalse(Files.exists(Path.of(clusterIndex, IndexSet.TEMP_DIR)), "no _temporary/ left in the index set");
        SparkSession spark = SparkJob.session("standalone-cluster-test");
        try {
            List<List<Object>> local = rows(spark, localDecoded);
            assertEquals(QUERIES, local.size());
            assertEquals(local, rows(spark, clusterDecoded), "decoded rows of local mode and of the cluster");
        } finally {
            spark.stop();
        }
    }

    static final int CONTEXTS = 2;
    static final int KV_HEADS = 2;
    static final int KEYS = 2048;
    static final int DIM = 32;
    static final int QUERIES = 96;

    /** Two contexts of two heads of 2,048 keys; 96 queries over the four heads in mixed order. */
    private static void writeTables(long seed, String contexts, String queries) {
        SplittableRandom random = new SplittableRandom(seed);
        StructType contextSchema = new StructType().add("context_id", "string").add("layer", "int")
                .add("kv_head", "int").add("head_dim", "int").add("keys", "array<float>")
                .add("values", "array<float>").add("prefill_queries", "array<float>");
        StructType querySchema = new StructType().add("query_id", "long").add("context_id", "string")
                .add("layer", "int").add("head", "int").add("query", "array<float>");
        List<Row> contextRows = new ArrayList<>();
        for (int c = 0; c < CONTEXTS; c++) {
            for (int h = 0; h < KV_HEADS; h++) {
                contextRows.add(RowFactory.create("doc-" + c, 0, h, DIM, gaussian(random, KEYS * DIM, 1),
                        gaussian(random, KEYS * DIM, 1), gaussian(random, KEYS * DIM, 2)));
            }
        }
        List<Row> queryRows = new ArrayList<>();
        for (int i = 0; i < QUERIES; i++) {
            queryRows.add(RowFactory.create((long) i, "doc-" + random.nextInt(CONTEXTS), 0,
                    random.nextInt(KV_HEADS), gaussian(random, DIM, 2)));
        }
        SparkSession spark = SparkJob.session("standalone-cluster-test-tables");
        try {
            spark.createDataFrame(contextRows, contextSchema).write().parquet(contexts);
            spark.createDataFrame(queryRows, querySchema).repartition(1).write().parquet(queries);
        } finally {
            spark.stop();
        }
    }

    private static float[] gaussian(SplittableRandom random, int n, double scale) {
        float[] out = new float[n];
        for (int i = 0; i < n; i++) {
            out[i] = (float) (random.nextGaussian() * scale);
        }
        return out;
    }

    /** Each head of the committed index set with its size and checksum; the file names hold the job's id. */
    private static List<String> heads(String index) throws IOException {
        org.apache.hadoop.fs.Path root = new org.apache.hadoop.fs.Path(index);
        IndexSet.Manifest manifest = IndexSet.latest(root.getFileSystem(new org.apache.hadoop.conf.Configuration()),
                root).orElseThrow();
        return manifest.heads().stream().map(e -> e.contextId() + "/" + e.layer() + "/" + e.kvHead() + " keys="
                + e.keys() + " dim=" + e.dim() + " bytes=" + e.bytes() + " checksum=" + e.checksum()).toList();
    }

    /** The decoded rows in the table's order, each without its decode time. */
    private static List<List<Object>> rows(SparkSession spark, String table) {
        List<List<Object>> out = new ArrayList<>();
        for (Row row : spark.read().parquet(table).collectAsList()) {
            List<Object> values = new ArrayList<>();
            for (int i = 0; i < row.length(); i++) {
                if (!row.schema().fields()[i].name().equals("decode_nanos")) {
                    Object v = row.get(i);
                    values.add(v instanceof scala.collection.Seq<?> seq
                            ? scala.jdk.javaapi.CollectionConverters.asJava(seq) : v);
                }
            }
            out.add(values);
        }
        return out;
    }

    /** Runs one submitted job to its end; its stdout, or a failure with every log. */
    private String job(String name, List<String> submit, String... args) throws Exception {
        List<String> command = new ArrayList<>(submit);
        command.addAll(List.of(args));
        Process p = start(name, "-Xmx1g " + SHORT_LIVED, command.toArray(String[]::new));
        if (!p.waitFor(JOB.toSeconds(), TimeUnit.SECONDS)) {
            fail(name + " did not finish in " + JOB);
        }
        String log = Files.readString(logs.get(name));
        assertEquals(0, p.exitValue(), name + " failed:\n" + log);
        return log;
    }

    /** Starts {@code command} with {@code jvmOptions} as JAVA_OPTS, its output in a log of its own. */
    private Process start(String name, String jvmOptions, String... command) throws IOException {
        Path log = dir.resolve(name + ".log");
        ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile());
        Map<String, String> env = builder.environment();
        env.remove("SPARK_HOME");
        env.remove("SPARK_CONF_DIR");
        env.put("JAVA_HOME", javaHome());
        env.put("JAVA_OPTS", jvmOptions);
        // the driver, the daemons and the executors they launch bind to loopback
        env.put("SPARK_LOCAL_IP", LOOPBACK);
        Process p = builder.start();
        processes.put(name, p);
        logs.put(name, log);
        return p;
    }

    /** Waits until the master's status page counts {@code workers} alive workers. */
    private void awaitWorkers(int uiPort, int workers) throws Exception {
        HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
        HttpRequest request = HttpRequest.newBuilder(URI.create("http://" + LOOPBACK + ":" + uiPort + "/json/"))
                .timeout(Duration.ofSeconds(5)).build();
        Pattern alive = Pattern.compile("\"aliveworkers\"\\s*:\\s*(\\d+)");
        long deadline = System.nanoTime() + CLUSTER_UP.toNanos();
        String last = "(no answer)";
        while (System.nanoTime() < deadline) {
            for (Map.Entry<String, Process> p : processes.entrySet()) {
                if (!p.getValue().isAlive()) {
                    fail(p.getKey() + " exited with " + p.getValue().exitValue() + " while the cluster started");
                }
            }
            try {
                last = http.send(request, HttpResponse.BodyHandlers.ofString()).body();
                Matcher m = alive.matcher(last);
                if (m.find() && Integer.parseInt(m.group(1)) == workers) {
                    return;
                }
            } catch (IOException notYet) {
                last = notYet.toString();
            }
            Thread.sleep(500);
        }
        fail("the master did not count " + workers + " alive workers in " + CLUSTER_UP + "; last status: " + last);
    }

    /** The executors' stderr files a worker's work directory holds (work/APP/EXECUTOR/stderr). */
    private static List<Path> executorLogs(Path work) throws IOException {
        if (!Files.isDirectory(work)) {
            return List.of();
        }
        try (Stream<Path> files = Files.walk(work)) {
            return files.filter(f -> f.getFileName().toString().equals("stderr")).sorted().toList();
        }
    }

    private void printLogs() {
        List<Path> all = new ArrayList<>(logs.values());
        for (int w = 1; w <= 2; w++) {
            try {
                all.addAll(executorLogs(dir.resolve("work-" + w)));
            } catch (IOException e) {
                System.out.println("cannot list the executor logs of worker " + w + ": " + e);
            }
        }
        for (Path log : all) {
            try {
                System.out.println("----- " + log + "\n" + Files.readString(log));
            } catch (IOException e) {
                System.out.println("----- " + log + ": " + e);
            }
        }
    }

    /** Stops every process this test started, children first (a worker's executors). */
    private void stopAll() throws InterruptedException {
        List<Process> reversed = new ArrayList<>(processes.values());
        java.util.Collections.reverse(reversed);
        for (Process p : reversed) {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
        }
        for (Process p : reversed) {
            p.waitFor(10, TimeUnit.SECONDS);
        }
    }

    private static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getByName(LOOPBACK))) {
            return socket.getLocalPort();
        }
    }

    private static String javaHome() {
        return System.getProperty("java.home");
    }
}
