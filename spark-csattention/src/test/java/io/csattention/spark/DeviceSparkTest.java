package io.csattention.spark;

import io.csattention.device.Backends;
import io.csattention.device.CapturedLog;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The option {@code device} through Spark's decode and tensor-level build: on a machine without a GPU, {@code auto}
 * gives {@code cpu}'s rows and index files bit for bit and logs its fallback once, and {@code gpu} fails with one
 * line; on a machine with one (skipped here), {@code gpu} selects like the CPU, builds indexes as good as the CPU's,
 * and RoPE heads fall back to the CPU under {@code auto}. The local session's tasks have no GPU resource, so they take
 * GPU 0.
 */
class DeviceSparkTest {

    static final TestTensors DATA = new TestTensors(2, 1, 2, 8192, 64, 41L);
    static final Map<String, String> OPTIONS = Map.of("sparsity", "0.95", "centroids", "32", "withSelected", "true",
            "blockSize", "64");

    static SparkSession spark;
    @TempDir
    static Path dir;
    static String index;
    static IndexSet.Manifest built;
    static Dataset<Row> queries;

    @BeforeAll
    static void build() throws IOException {
        spark = SharedSpark.get();
        index = dir.resolve("index").toString();
        built = CSAttention.buildIndexes(DATA.contextsTable(spark), index, OPTIONS);
        queries = DATA.queriesTable(spark, 48).repartition(3);
    }

    private static Map<String, String> on(String device) {
        Map<String, String> o = new HashMap<>(OPTIONS);
        o.put("device", device);
        return o;
    }

    /** query_id -> (output, selected ids), floats compared by their bits. */
    private static Map<Long, List<Object>> decoded(String root, Map<String, String> options) throws IOException {
        Map<Long, List<Object>> out = new HashMap<>();
        for (Row r : CSAttention.decode(queries, root, options).collectAsList()) {
            out.put(r.getAs("query_id"), List.of(r.getList(r.fieldIndex("output")),
                    r.getList(r.fieldIndex("selected_ids"))));
        }
        return out;
    }

    @Test
    void autoWithoutAGpuDecodesExactlyAsCpuAndLogsItsFallbackOnce() throws IOException {
        String reason = Backends.gpuUnavailableReason(0);
        Assumptions.assumeTrue(reason != null, "a usable GPU is present");
        try (CapturedLog log = CapturedLog.of(Backends.class)) {
            Map<Long, List<Object>> cpu = decoded(index, on("cpu"));
            assertTrue(log.lines().isEmpty(), "cpu does not look for a GPU: " + log.lines());
            ExecutorIndexCache.INSTANCE.clear();
            Map<Long, List<Object>> auto = decoded(index, on("auto"));
            Map<Long, List<Object>> again = decoded(index, on("AUTO"));
            assertEquals(2 * 2 * 48, cpu.size());
            assertEquals(cpu, auto, "auto without a GPU is the CPU decode, bit for bit");
            assertEquals(cpu, again);
            String line = "device: cpu (auto fell back from gpu 0: " + reason + ")";
            assertEquals(line, Backends.fallbackLine(0));
            // logged once per JVM (an executor): here, or already by an earlier test of this JVM
            assertTrue(log.lines().equals(List.of(line)) || log.lines().isEmpty(), log.lines().toString());
        }
    }

    @Test
    void gpuWithoutADeviceFailsTheJobWithOneLine() {
        String reason = Backends.gpuUnavailableReason(0);
        Assumptions.assumeTrue(reason != null, "a usable GPU is present");
        Exception e = assertThrows(Exception.class, () -> decoded(index, on("gpu")));
        String expected = "device gpu needs a usable CUDA device: " + reason + "; device=gpu";
        String message = e.getMessage();
        String prefix = "had a not serializable result: ";
        assertTrue(message.contains(prefix), "the task failed once, not retried: " + message);
        String line = message.substring(message.indexOf(prefix) + prefix.length()).lines().findFirst().orElse("");
        assertEquals(expected, line);
    }

    @Test
    void gpuSelectsLikeTheCpu() throws IOException {
        Assumptions.assumeTrue(Backends.gpuUnavailableReason(0) == null, "no usable GPU: "
                + Backends.gpuUnavailableReason(0));
        Map<Long, List<Object>> cpu = decoded(index, on("cpu"));
        Map<Long, List<Object>> gpu = decoded(index, on("gpu"));
        assertEquals(cpu.keySet(), gpu.keySet());
        for (Map.Entry<Long, List<Object>> e : cpu.entrySet()) {
            TreeSet<Object> expected = new TreeSet<>((List<?>) e.getValue().get(1));
            TreeSet<Object> got = new TreeSet<>((List<?>) gpu.get(e.getKey()).get(1));
            assertEquals(expected.size(), got.size(), "query_id=" + e.getKey());
            got.retainAll(expected);
            // the GPU's float sums may order near-ties otherwise (kernels/README.md); GpuAgreement's bar
            assertTrue(got.size() >= 0.99 * expected.size(), "query_id=" + e.getKey() + " shares " + got.size()
                    + " of " + expected.size() + " keys");
            if (got.size() == expected.size()) {
                List<?> a = (List<?>) e.getValue().get(0);
                List<?> b = (List<?>) gpu.get(e.getKey()).get(0);
                for (int i = 0; i < a.size(); i++) {
                    float x = (Float) a.get(i);
                    float y = (Float) b.get(i);
                    assertTrue(Math.abs(x - y) <= 1e-4f * Math.max(1, Math.abs(x)), "query_id=" + e.getKey()
                            + " output[" + i + "]: cpu " + x + ", gpu " + y);
                }
            }
        }
    }

    @Test
    void ropeHeadsDecodeOnTheCpuUnderAutoAndFailUnderGpu() throws IOException {
        Assumptions.assumeTrue(Backends.gpuUnavailableReason(0) == null, "no usable GPU: "
                + Backends.gpuUnavailableReason(0));
        String rope = dir.resolve("rope").toString();
        Map<String, String> withRope = new HashMap<>(OPTIONS);
        withRope.put("ropeBase", "10000");
        CSAttention.buildIndexes(DATA.contextsTable(spark), rope, withRope);
        Map<String, String> auto = new HashMap<>(on("auto"));
        Map<String, String> cpu = new HashMap<>(on("cpu"));
        assertEquals(decoded(rope, cpu), decoded(rope, auto), "auto decodes RoPE heads on the CPU");
        assertTrue(ExecutorDevice.cpuReason(new HeadKey("ctx-0", 0, 0), Backends.select("gpu", 0))
                .startsWith("the GPU decoder takes an index built without RoPE information"));
        Exception e = assertThrows(Exception.class, () -> decoded(rope, on("gpu")));
        assertTrue(e.getMessage().contains("had a not serializable result: device gpu cannot decode context_id="),
                e.getMessage());
    }

    private static Map<String, Long> checksums(IndexSet.Manifest manifest) {
        Map<String, Long> out = new HashMap<>();
        for (IndexSet.Entry e : manifest.heads()) {
            out.put(e.key().toString(), e.checksum());
        }
        return out;
    }

    @Test
    void autoBuildWithoutAGpuWritesTheCpuBuildsFiles() throws IOException {
        String reason = Backends.gpuUnavailableReason(0);
        Assumptions.assumeTrue(reason != null, "a usable GPU is present");
        IndexSet.Manifest auto = CSAttention.buildIndexes(DATA.contextsTable(spark), dir.resolve("auto").toString(),
                on("auto"));
        assertEquals(4, auto.heads().size());
        assertEquals(checksums(built), checksums(auto), "the same bytes, head by head");
        assertEquals("device: cpu (auto fell back from gpu 0: " + reason + ")", Backends.fallbackLine(0));
    }

    @Test
    void gpuBuildWithoutADeviceFailsWithOneLine() {
        String reason = Backends.gpuUnavailableReason(0);
        Assumptions.assumeTrue(reason != null, "a usable GPU is present");
        Exception e = assertThrows(Exception.class, () -> CSAttention.buildIndexes(DATA.contextsTable(spark),
                dir.resolve("gpu").toString(), on("gpu")));
        String expected = "device gpu needs a usable CUDA device: " + reason + "; device=gpu";
        boolean found = false;
        for (Throwable t = e; t != null && !found; t = t.getCause()) {
            found = t.getMessage() != null && t.getMessage().contains("had a not serializable result: " + expected);
        }
        assertTrue(found, "the task failed once, not retried, with the line: " + e);
    }

    /** Mean share of the exact top-{@code budget} keys (scores in float64) that each query's selection holds. */
    private static double recall(Map<Long, List<Object>> decoded, int perHead) {
        double sum = 0;
        long id = 0;
        for (int c = 0; c < DATA.contexts; c++) {
            for (int h = 0; h < DATA.kvHeads; h++) {
                io.csattention.core.FloatMatrix k = DATA.keys(c, 0, h);
                io.csattention.core.FloatMatrix q = DATA.queries(c, 0, h, perHead);
                for (int i = 0; i < perHead; i++, id++) {
                    List<?> selected = (List<?>) decoded.get(id).get(1);
                    double[] scores = new double[k.rows()];
                    Integer[] order = new Integer[k.rows()];
                    for (int j = 0; j < k.rows(); j++) {
                        order[j] = j;
                        for (int x = 0; x < DATA.dim; x++) {
                            scores[j] += (double) q.get(i, x) * k.get(j, x);
                        }
                    }
                    java.util.Arrays.sort(order, (a, b) -> Double.compare(scores[b], scores[a]));
                    TreeSet<Object> top = new TreeSet<>(java.util.Arrays.asList(order).subList(0, selected.size()));
                    top.retainAll(new TreeSet<Object>(selected));
                    sum += (double) top.size() / selected.size();
                }
            }
        }
        return sum / id;
    }

    @Test
    void gpuBuildIndexesAsWellAsTheCpuBuild() throws IOException {
        Assumptions.assumeTrue(Backends.gpuUnavailableReason(0) == null, "no usable GPU: "
                + Backends.gpuUnavailableReason(0));
        String onGpu = dir.resolve("built-on-gpu").toString();
        assertEquals(4, CSAttention.buildIndexes(DATA.contextsTable(spark), onGpu, on("gpu")).heads().size());
        double cpu = recall(decoded(index, on("cpu")), 48);
        double gpu = recall(decoded(onGpu, on("cpu")), 48);
        assertTrue(Math.abs(cpu - gpu) <= 0.02, "recall of the exact top-k: cpu-built " + cpu + ", gpu-built " + gpu);
    }
}
