package io.csattention.jobs;

import io.csattention.device.Backends;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.io.PrintWriter;
import java.io.StringWriter;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** gpu-bench on a CPU-only machine: the GPU is reported unavailable and the CPU rows are timed; --device is checked. */
class GpuBenchCommandTest {

    private static final String[] SMALL = {"--tokens", "1031", "--head-dim", "16", "--queries", "4", "--repetitions",
            "1", "--prefill-queries", "64", "--centroids", "8", "--heads", "1", "--gemm-batches", "4"};

    private record Result(int code, String out, String err) {
    }

    private static Result run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int code = Main.run(args, new PrintWriter(out, true), new PrintWriter(err, true));
        return new Result(code, out.toString(), err.toString());
    }

    private static String[] bench(String... extra) {
        String[] args = new String[1 + SMALL.length + extra.length];
        args[0] = "gpu-bench";
        System.arraycopy(SMALL, 0, args, 1, SMALL.length);
        System.arraycopy(extra, 0, args, 1 + SMALL.length, extra.length);
        return args;
    }

    @Test
    void withoutGpuAutoTimesTheCpuRowsAndSaysWhy() {
        String reason = Backends.gpuUnavailableReason(0);
        Assumptions.assumeTrue(reason != null, "a usable GPU is present");
        Result result = run(bench("--device", "auto"));
        assertEquals(0, result.code(), result.err());
        assertTrue(result.out().contains("gpu: unavailable (" + reason + "); timing the CPU rows only"),
                result.out());
        assertTrue(result.out().lines().anyMatch(l -> l.matches("1031\\s+cpu\\s+csattention\\s+.*")), result.out());
    }

    @Test
    void cpuBackendSkipsTheGpu() {
        Result result = run(bench("--device", "cpu"));
        assertEquals(0, result.code(), result.err());
        assertTrue(result.out().contains("gpu: unavailable (not requested (--device cpu))"), result.out());
    }

    @Test
    void gpuBackendWithoutDeviceIsOneLineError() {
        String reason = Backends.gpuUnavailableReason(0);
        Assumptions.assumeTrue(reason != null, "a usable GPU is present");
        Result result = run(bench("--device", "gpu"));
        assertEquals(2, result.code());
        assertEquals("error: device gpu needs a usable CUDA device: " + reason + "; device=gpu",
                result.err().strip());
    }

    @Test
    void theTableHasKernelTimeBesideWallTimeAndTheCpuRowHasNone() {
        Result result = run(bench("--device", "cpu"));
        assertEquals(0, result.code(), result.err());
        assertTrue(result.out().lines().anyMatch(l -> l.matches("tokens\\s+on\\s+method\\s+build ms\\s+decode us/q\\s+"
                + "kernel us/q\\s+bytes/q\\s+GB/s\\s+% copy\\s+recall\\s+error")), result.out());
        assertTrue(result.out().lines().anyMatch(l -> l.matches("1031\\s+cpu\\s+csattention\\s+\\S+\\s+\\S+\\s+-\\s+\\d+\\s+.*")),
                result.out());
        assertTrue(result.out().contains(", heads on the GPU at once: 1 (K and V in float32: 0.1 MB)"), result.out());
    }

    @Test
    void headsAndGemmBatchesAreChecked() {
        Result heads = run("gpu-bench", "--device", "cpu", "--heads", "0");
        assertEquals(2, heads.code());
        assertEquals("error: --heads must be an integer in [1, 1024]; --heads=0", heads.err().strip());
        Result batches = run(bench("--gemm-batches", "8,0"));
        assertEquals(2, batches.code());
        assertEquals("error: --gemm-batches must be an integer in [1, 65536]; --gemm-batches=0", batches.err().strip());
    }

    @Test
    void unknownBackendIsRejected() {
        Result result = run(bench("--device", "tpu"));
        assertEquals(2, result.code());
        assertEquals("error: device must be one of auto, cpu, gpu; device=tpu", result.err().strip());
    }
}
