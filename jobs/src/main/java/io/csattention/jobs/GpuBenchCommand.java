package io.csattention.jobs;

import io.csattention.core.Check;
import io.csattention.core.FloatMatrix;
import io.csattention.device.Backends;
import io.csattention.device.DecodeBackend;
import io.csattention.device.DecodedBlock;
import io.csattention.device.cuda.CudaDecodeBackend;
import io.csattention.device.cuda.GpuBench;
import io.csattention.eval.Metrics;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

/**
 * {@code gpu-bench}: the GPU timing table of the measurements of {@link GpuBench} (index build ms and decode us per
 * query of GPU csattention, GPU full attention and CPU csattention, the decode's bandwidth against the card's
 * device-to-device copy bandwidth, and the GPU decode's agreement with the CPU one, by {@link Metrics}). Without a
 * usable GPU ({@code --device auto}) it says why and times the CPU rows only. kernels/device-check.sh runs it through
 * {@link #main}.
 */
@Command(name = "gpu-bench", mixinStandardHelpOptions = true,
        description = "Times index build and decode (us per query) of GPU csattention, GPU full attention and CPU "
                + "csattention on synthetic contexts, with the decode's bandwidth against the card's copy bandwidth.")
public final class GpuBenchCommand implements Callable<Integer> {

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Mixin
    DeviceOption device;

    @Option(names = "--tokens", split = ",", paramLabel = "N[,N...]", defaultValue = "131072",
            description = "Context lengths. Default: ${DEFAULT-VALUE}.")
    int[] tokens;

    @Option(names = "--head-dim", defaultValue = "128", description = "Head dimension d. Default: ${DEFAULT-VALUE}.")
    int dim;

    @Option(names = "--queries", defaultValue = "64", description = "Queries per block. Default: ${DEFAULT-VALUE}.")
    int queries;

    @Option(names = "--repetitions", defaultValue = "5",
            description = "Timed blocks per measurement (median). Default: ${DEFAULT-VALUE}.")
    int repetitions;

    @Option(names = "--sparsity", defaultValue = "0.95", description = "Default: ${DEFAULT-VALUE}.")
    double sparsity;

    @Option(names = "--prefill-queries", defaultValue = "4096",
            description = "Prefill queries per context. Default: ${DEFAULT-VALUE}.")
    int prefillQueries;

    @Option(names = "--centroids", defaultValue = "256", description = "C per subspace. Default: ${DEFAULT-VALUE}.")
    int centroids;

    @Option(names = "--seed", defaultValue = "42", description = "Default: ${DEFAULT-VALUE}.")
    long seed;

    @Option(names = "--heads", defaultValue = "8",
            description = "Heads resident on the GPU at once, decoded in turn, so that K and V exceed the L2. "
                    + "Default: ${DEFAULT-VALUE}.")
    int heads;

    @Option(names = "--gemm-batches", split = ",", paramLabel = "B[,B...]", defaultValue = "1,8,32,64,128,256,512",
            description = "Batch sizes of the block-GEMM full attention. Default: ${DEFAULT-VALUE}.")
    int[] gemmBatches;

    /**
     * {@code java -cp ... io.csattention.jobs.GpuBenchCommand [flags]}: this command alone, without the Spark classes
     * the other commands load (kernels/device-check.sh runs it so); the same exit codes and error lines as Main.
     */
    public static void main(String[] args) {
        System.exit(CommandRunner.run(new GpuBenchCommand(), args, new PrintWriter(System.out, true),
                new PrintWriter(System.err, true)));
    }

    @Override
    public Integer call() {
        Backends.Mode mode = device.mode();
        Check.that(heads >= 1, "heads must be >= 1", "heads", heads);
        for (int batch : gemmBatches) {
            Check.that(batch >= 1, "gemm batches must be >= 1", "gemm-batches", batch);
        }
        GpuBench.Config config = new GpuBench.Config(dim, queries, repetitions, sparsity, prefillQueries, centroids,
                seed, heads, gemmBatches);
        CudaDecodeBackend gpu = null;
        if (mode != Backends.Mode.CPU) {
            DecodeBackend chosen = Backends.select(mode, device.gpuOrdinal());
            gpu = chosen instanceof CudaDecodeBackend cuda ? cuda : null;
        }
        DecodeBackend cpu = Backends.cpu();
        PrintWriter out = spec.commandLine().getOut();
        out.printf(Locale.ROOT, "gpu-bench: d=%d, %d queries per block, sparsity %.3f, %d prefill queries, C=%d, "
                + "median of %d blocks, seed %d, heads on the GPU at once: %d (K and V in float32: %.1f MB)%n", dim,
                queries, sparsity, prefillQueries, centroids, repetitions, seed, heads,
                heads * (double) Arrays.stream(tokens).max().orElse(0) * dim * 2 * Float.BYTES / 1e6);
        out.println("cpu: " + cpu.name() + ", " + Runtime.getRuntime().availableProcessors() + " cores");
        double copyBandwidth = Double.NaN;
        if (gpu != null) {
            out.println("gpu: " + gpu.describe());
            copyBandwidth = gpu.copyBandwidth(1L << 30, 10);
            out.printf(Locale.ROOT, "gpu copy bandwidth (device to device, read + write): %.1f GB/s%n",
                    copyBandwidth / 1e9);
            GpuBench.warmUp(config, gpu);
        } else {
            String reason = mode == Backends.Mode.CPU ? "not requested (--device cpu)"
                    : Backends.gpuUnavailableReason(device.gpuOrdinal());
            out.println("gpu: unavailable (" + reason + "); timing the CPU rows only");
        }
        out.println();
        out.printf(Locale.ROOT, "%-8s %-4s %-12s %10s %12s %12s %12s %9s %7s %8s %8s%n", "tokens", "on", "method",
                "build ms", "decode us/q", "kernel us/q", "bytes/q", "GB/s", "% copy", "recall", "error");
        List<String> speedups = new ArrayList<>();
        for (int n : tokens) {
            GpuBench.ContextTimes times = GpuBench.measure(config, n, gpu, cpu);
            GpuBench.GpuTimes g = times.gpu();
            if (g != null) {
                row(out, n, "gpu", "csattention", g.buildMs(), g.sparseUs(), times.sparseBytes(), copyBandwidth,
                        meanRecall(g.cpuDecode(), g.gpuDecode()),
                        worstError(g.gpuDecode().outputs(), g.cpuDecode().outputs()));
                row(out, n, "gpu", "full", Double.NaN, g.fullUs(), times.fullBytes() / times.tileShare(),
                        copyBandwidth, Double.NaN, Double.NaN);
                row(out, n, "gpu", "full/query", Double.NaN, g.fullPerQueryUs(), times.fullBytes(), copyBandwidth,
                        Double.NaN, worstError(g.perQueryFull(), g.tiledFull()));
                for (GpuBench.GemmTimes gemm : g.gemm()) {
                    row(out, n, "gpu", "gemm/" + gemm.batch(), Double.NaN, gemm.us(), gemm.bytes(), copyBandwidth,
                            Double.NaN, gemm.batch() == queries ? worstError(g.gemmFull(), g.tiledFull()) : Double.NaN);
                }
                row(out, n, "gpu", "(gpu index)", Double.NaN, NONE, 0, Double.NaN,
                        meanRecall(g.cpuDecode(), g.gpuIndexDecode()),
                        worstError(g.gpuIndexDecode().outputs(), g.cpuDecode().outputs()));
                double sparse = g.sparseUs().kernel();
                int crossover = g.crossoverBatch();
                speedups.add(String.format(Locale.ROOT, "%d tokens, by kernel time: gpu csattention decode %.2fx "
                                + "faster than flash-decoding full attention per query, %.2fx than the tiled full "
                                + "attention; block-GEMM full attention %s; gpu csattention %.2fx faster than cpu "
                                + "csattention (wall); gpu index build %.2fx faster than cpu", n,
                        g.fullPerQueryUs().kernel() / sparse, g.fullUs().kernel() / sparse,
                        crossover > 0 ? "beats csattention per query from batch " + crossover
                                : "beats csattention per query at none of the batches " + batches(),
                        times.cpuDecodeUs() / g.sparseUs().wall(), times.cpuBuildMs() / g.buildMs()));
            }
            row(out, n, "cpu", "csattention", times.cpuBuildMs(), new GpuBench.Micros(times.cpuDecodeUs(), Double.NaN),
                    times.sparseBytes(), Double.NaN, Double.NaN, Double.NaN);
        }
        out.println();
        speedups.forEach(out::println);
        out.println("recall: mean recall of the CPU decode's selection by the GPU decode of the same (CPU-built) "
                + "index; error: worst relative L2 error of its outputs; for the GPU build, the CPU decode of the "
                + "GPU-built index against the CPU-built one. decode us/q: wall clock per query and head (upload, "
                + "kernels, download); kernel us/q: the kernels alone by CUDA events; GB/s and % copy: bytes/q over "
                + "kernel time on the GPU, over wall time on the CPU. bytes/q: csattention's every kernel read and "
                + "write (packed lists, key sketch, centroids, sum rows, selected K and V, partials); full: K and V "
                + "over the 8 queries sharing a read; full/query: flash-decoding, K and V once per query; gemm/B: "
                + "scores = Q K^T, softmax, P V over blocks of B queries (float32 CUDA cores, not tensor cores).");
        out.flush();
        return 0;
    }

    /** Mean recall of {@code reference}'s selections by {@code actual}'s, query by query. */
    private static double meanRecall(DecodedBlock reference, DecodedBlock actual) {
        double[] recalls = new double[reference.queries()];
        for (int q = 0; q < recalls.length; q++) {
            recalls[q] = Metrics.recall(actual.selected(q), reference.selected(q));
        }
        return Metrics.mean(recalls);
    }

    /** The worst relative L2 error of a row of {@code actual} against the same row of {@code reference}. */
    private static double worstError(FloatMatrix actual, FloatMatrix reference) {
        int d = reference.cols();
        double worst = 0;
        for (int q = 0; q < reference.rows(); q++) {
            worst = Math.max(worst, Metrics.relativeError(actual.data(), q * d, reference.data(), q * d, d));
        }
        return worst;
    }

    private static final GpuBench.Micros NONE = new GpuBench.Micros(Double.NaN, Double.NaN);

    private String batches() {
        return Arrays.toString(gemmBatches);
    }

    private static void row(PrintWriter out, int n, String on, String method, double buildMs, GpuBench.Micros us,
                            long bytes, double copyBandwidth, double recall, double error) {
        double seconds = (Double.isFinite(us.kernel()) ? us.kernel() : us.wall()) * 1e-6;
        double bandwidth = bytes / seconds;
        out.printf(Locale.ROOT, "%-8d %-4s %-12s %10s %12s %12s %12s %9s %7s %8s %8s%n", n, on, method,
                format("%.1f", buildMs), format("%.2f", us.wall()), format("%.2f", us.kernel()),
                bytes > 0 ? Long.toString(bytes) : "-",
                format("%.1f", bandwidth / 1e9), format("%.1f", 100 * bandwidth / copyBandwidth),
                format("%.4f", recall), format("%.1e", error));
        out.flush();
    }

    private static String format(String pattern, double value) {
        return Double.isFinite(value) ? String.format(Locale.ROOT, pattern, value) : "-";
    }
}
