package io.csattention.device.cuda;

import io.csattention.core.CSAttentionIndex;
import io.csattention.core.CSAttentionSettings;
import io.csattention.core.FloatMatrix;
import io.csattention.core.KeyValueCache;
import io.csattention.device.Backends;
import io.csattention.device.ContextDecoder;
import io.csattention.device.DecodeBackend;
import io.csattention.device.DecodedBlock;

import java.io.PrintWriter;
import java.util.Arrays;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * The GPU timing table of {@code kernels/device-check.sh} and of the {@code gpu-bench} command: per context length,
 * index build milliseconds and decode microseconds per query for GPU csattention, GPU full attention and CPU
 * csattention, the decode's achieved bandwidth against the card's measured device-to-device copy bandwidth, and how
 * well the GPU decode agrees with the CPU one. Without a usable GPU (mode {@code auto}) it says why and times the CPU
 * rows only. Bytes per query count what the issue counts: for csattention the m chosen lists (4-byte id and 4-byte
 * score per entry) plus the selected keys' K and V rows; for full attention every K and V row, divided by the queries
 * that share one read in the tiled kernel ({@code full}); {@code full/query} reads them once per query, as decoding
 * independent sequences would, and its error column compares its outputs with the tiled kernel's.
 */
public final class GpuBench {

    /**
     * @param tokens         context lengths N
     * @param dim            head dimension d
     * @param queries        queries per decoded block
     * @param repetitions    timed blocks per measurement (after one warm-up); the median is reported
     * @param sparsity       share of keys not attended
     * @param prefillQueries prefill queries the index is built from
     * @param centroids      C per subspace
     * @param seed           seed of the synthetic context
     * @param mode           auto, cpu or gpu (gpu fails without a usable device)
     * @param gpuOrdinal     CUDA device ordinal
     */
    public record Config(int[] tokens, int dim, int queries, int repetitions, double sparsity, int prefillQueries,
                         int centroids, long seed, Backends.Mode mode, int gpuOrdinal) {

        public static Config defaults() {
            return new Config(new int[] {32768, 131072}, 128, 64, 5, 0.95, 4096, 256, 42L, Backends.Mode.AUTO, 0);
        }
    }

    private GpuBench() {
    }

    /** {@code java -cp ... io.csattention.device.cuda.GpuBench [auto|cpu|gpu] [N,N,...]}: the defaults otherwise. */
    public static void main(String[] args) {
        Config defaults = Config.defaults();
        Backends.Mode mode = args.length > 0 ? Backends.Mode.parse(args[0]) : defaults.mode();
        int[] tokens = args.length > 1 ? Arrays.stream(args[1].split(",")).mapToInt(s -> Integer.parseInt(s.trim()))
                .toArray() : defaults.tokens();
        PrintWriter out = new PrintWriter(System.out, true);
        try {
            run(new Config(tokens, defaults.dim(), defaults.queries(), defaults.repetitions(), defaults.sparsity(),
                    defaults.prefillQueries(), defaults.centroids(), defaults.seed(), mode, defaults.gpuOrdinal()),
                    out);
        } catch (IllegalArgumentException e) {
            System.err.println("error: " + e.getMessage());
            System.exit(2);
        }
    }

    /** Runs the benchmark and prints the table. */
    public static void run(Config config, PrintWriter out) {
        CudaDecodeBackend gpu = null;
        if (config.mode() != Backends.Mode.CPU) {
            DecodeBackend chosen = Backends.select(config.mode(), config.gpuOrdinal());
            gpu = chosen instanceof CudaDecodeBackend cuda ? cuda : null;
        }
        DecodeBackend cpu = Backends.cpu();
        out.printf(Locale.ROOT, "gpu-bench: d=%d, %d queries per block, sparsity %.3f, %d prefill queries, C=%d, "
                        + "median of %d blocks, seed %d%n", config.dim(), config.queries(), config.sparsity(),
                config.prefillQueries(), config.centroids(), config.repetitions(), config.seed());
        out.println("cpu: " + cpu.name() + ", " + Runtime.getRuntime().availableProcessors() + " cores");
        double copyBandwidth = Double.NaN;
        if (gpu != null) {
            out.println("gpu: " + gpu.describe());
            copyBandwidth = gpu.copyBandwidth(1L << 30, 10);
            out.printf(Locale.ROOT, "gpu copy bandwidth (device to device, read + write): %.1f GB/s%n",
                    copyBandwidth / 1e9);
            warmUp(config, gpu);
        } else {
            String reason = config.mode() == Backends.Mode.CPU ? "not requested (--device cpu)"
                    : Backends.gpuUnavailableReason(config.gpuOrdinal());
            out.println("gpu: unavailable (" + reason + "); timing the CPU rows only");
        }
        out.println();
        out.printf(Locale.ROOT, "%-8s %-4s %-12s %10s %12s %12s %9s %7s %8s %8s%n", "tokens", "on", "method",
                "build ms", "decode us/q", "bytes/q", "GB/s", "% copy", "recall", "error");
        String[] speedups = new String[config.tokens().length];
        for (int t = 0; t < config.tokens().length; t++) {
            speedups[t] = benchContext(config, config.tokens()[t], gpu, cpu, copyBandwidth, out);
        }
        out.println();
        for (String line : speedups) {
            if (line != null) {
                out.println(line);
            }
        }
        out.println("recall: mean recall of the CPU decode's selection by the GPU decode of the same (CPU-built) "
                + "index; error: worst relative L2 error of its outputs; for the GPU build, the CPU decode of the "
                + "GPU-built index against the CPU-built one.");
        out.flush();
    }

    /** One small build and decode, untimed, so that first-use costs (allocation, JIT of the PTX) stay out. */
    private static void warmUp(Config config, CudaDecodeBackend gpu) {
        Context context = Context.synthetic(4096, config.dim(), 512, config.queries(), config.seed());
        CSAttentionSettings settings = CSAttentionSettings.defaults().withSparsity(config.sparsity())
                .withCentroids(Math.min(64, config.centroids())).withSeed(config.seed());
        CSAttentionIndex index = gpu.buildIndex(context.keys(), context.prefillQueries(), settings);
        try (ContextDecoder decoder = gpu.open(context.cache(), index, settings)) {
            decoder.decode(context.queries());
            decoder.attendAll(context.queries());
        }
    }

    private static String benchContext(Config config, int n, CudaDecodeBackend gpu, DecodeBackend cpu,
                                       double copyBandwidth, PrintWriter out) {
        Context context = Context.synthetic(n, config.dim(), config.prefillQueries(), config.queries(),
                config.seed() + n);
        CSAttentionSettings settings = CSAttentionSettings.defaults().withSparsity(config.sparsity())
                .withCentroids(config.centroids()).withSeed(config.seed());

        long start = System.nanoTime();
        CSAttentionIndex cpuIndex = cpu.buildIndex(context.keys(), context.prefillQueries(), settings);
        double cpuBuildMs = (System.nanoTime() - start) / 1e6;
        long sparseBytes = 8L * cpuIndex.subspaces() * cpuIndex.listLength()
                + 8L * config.dim() * settings.plan(n).budget();
        long fullBytes = 8L * config.dim() * n;

        DecodedBlock cpuBlock;
        double cpuDecodeUs;
        try (ContextDecoder decoder = cpu.open(context.cache(), cpuIndex, settings)) {
            cpuBlock = decoder.decode(context.queries());
            cpuDecodeUs = medianMicrosPerQuery(config, () -> decoder.decode(context.queries()));
        }
        String speedup = null;
        if (gpu != null) {
            start = System.nanoTime();
            CSAttentionIndex gpuIndex = gpu.buildIndex(context.keys(), context.prefillQueries(), settings);
            double gpuBuildMs = (System.nanoTime() - start) / 1e6;
            double gpuSparseUs;
            double gpuFullUs;
            double gpuFullPerQueryUs;
            double fullError;
            double recall;
            double error;
            try (ContextDecoder decoder = gpu.open(context.cache(), cpuIndex, settings)) {
                DecodedBlock gpuBlock = decoder.decode(context.queries());
                recall = meanRecall(cpuBlock, gpuBlock);
                error = worstRelativeError(cpuBlock.outputs(), gpuBlock.outputs());
                gpuSparseUs = medianMicrosPerQuery(config, () -> decoder.decode(context.queries()));
                FloatMatrix tiled = decoder.attendAll(context.queries());
                gpuFullUs = medianMicrosPerQuery(config, () -> decoder.attendAll(context.queries()));
                CudaContextDecoder cuda = (CudaContextDecoder) decoder;
                fullError = worstRelativeError(cuda.attendAllPerQuery(context.queries()), tiled);
                gpuFullPerQueryUs = medianMicrosPerQuery(config, () -> cuda.attendAllPerQuery(context.queries()));
            }
            DecodedBlock fromGpuIndex;
            try (ContextDecoder decoder = cpu.open(context.cache(), gpuIndex, settings)) {
                fromGpuIndex = decoder.decode(context.queries());
            }
            row(out, n, "gpu", "csattention", gpuBuildMs, gpuSparseUs, sparseBytes, copyBandwidth, recall, error);
            row(out, n, "gpu", "full", Double.NaN, gpuFullUs, fullBytes / tileShare(config), copyBandwidth,
                    Double.NaN, Double.NaN);
            row(out, n, "gpu", "full/query", Double.NaN, gpuFullPerQueryUs, fullBytes, copyBandwidth, Double.NaN,
                    fullError);
            row(out, n, "gpu", "(gpu index)", Double.NaN, Double.NaN, 0, Double.NaN,
                    meanRecall(cpuBlock, fromGpuIndex), worstRelativeError(cpuBlock.outputs(),
                            fromGpuIndex.outputs()));
            speedup = String.format(Locale.ROOT, "%d tokens: gpu csattention decode %.2fx faster than gpu full "
                            + "attention (%.2fx than full attention per query), %.2fx faster than cpu csattention; "
                            + "gpu index build %.2fx faster than cpu", n, gpuFullUs / gpuSparseUs,
                    gpuFullPerQueryUs / gpuSparseUs, cpuDecodeUs / gpuSparseUs, cpuBuildMs / gpuBuildMs);
        }
        row(out, n, "cpu", "csattention", cpuBuildMs, cpuDecodeUs, sparseBytes, Double.NaN, Double.NaN, Double.NaN);
        return speedup;
    }

    /** Queries that share one K/V read in the tiled full attention: bytes per query divide by this. */
    private static long tileShare(Config config) {
        return Math.min(config.queries(), PtxFunction.QUERY_TILE);
    }

    private static void row(PrintWriter out, int n, String on, String method, double buildMs, double decodeUs,
                            long bytes, double copyBandwidth, double recall, double error) {
        double bandwidth = bytes / (decodeUs * 1e-6);
        out.printf(Locale.ROOT, "%-8d %-4s %-12s %10s %12s %12s %9s %7s %8s %8s%n", n, on, method,
                format("%.1f", buildMs), format("%.2f", decodeUs), bytes > 0 ? Long.toString(bytes) : "-",
                format("%.1f", bandwidth / 1e9), format("%.1f", 100 * bandwidth / copyBandwidth),
                format("%.4f", recall), format("%.1e", error));
        out.flush();
    }

    private static String format(String pattern, double value) {
        return Double.isFinite(value) ? String.format(Locale.ROOT, pattern, value) : "-";
    }

    private static double medianMicrosPerQuery(Config config, Runnable block) {
        double[] micros = new double[config.repetitions()];
        for (int r = 0; r < micros.length; r++) {
            long start = System.nanoTime();
            block.run();
            micros[r] = (System.nanoTime() - start) / 1e3 / config.queries();
        }
        Arrays.sort(micros);
        return micros[micros.length / 2];
    }

    static double meanRecall(DecodedBlock reference, DecodedBlock actual) {
        double total = 0;
        for (int q = 0; q < reference.queries(); q++) {
            int[] got = Arrays.stream(actual.selected(q)).filter(id -> id >= 0).sorted().toArray();
            int[] want = Arrays.stream(reference.selected(q)).filter(id -> id >= 0).toArray();
            long found = Arrays.stream(want).filter(id -> Arrays.binarySearch(got, id) >= 0).count();
            total += want.length == 0 ? 1.0 : (double) found / want.length;
        }
        return total / reference.queries();
    }

    static double worstRelativeError(FloatMatrix expected, FloatMatrix actual) {
        double worst = 0;
        for (int q = 0; q < expected.rows(); q++) {
            double diff = 0;
            double norm = 0;
            for (int t = 0; t < expected.cols(); t++) {
                double e = expected.get(q, t);
                double a = actual.get(q, t);
                diff += (e - a) * (e - a);
                norm += e * e;
            }
            worst = Math.max(worst, Math.sqrt(diff / Math.max(norm, 1e-30)));
        }
        return worst;
    }

    /**
     * A synthetic context for timing: Gaussian keys and values; every query (prefill and decode) is a scaled sum of
     * three random keys plus noise, so attention has clear favourites as in real heads. Timing does not depend on
     * finer structure; accuracy is measured by the eval commands.
     */
    record Context(KeyValueCache cache, FloatMatrix keys, FloatMatrix prefillQueries, FloatMatrix queries) {
        static Context synthetic(int n, int d, int prefill, int queries, long seed) {
            SplittableRandom random = new SplittableRandom(seed);
            float[] keys = new float[n * d];
            float[] values = new float[n * d];
            for (int i = 0; i < keys.length; i++) {
                keys[i] = (float) random.nextGaussian();
                values[i] = (float) random.nextGaussian();
            }
            FloatMatrix keyMatrix = new FloatMatrix(n, d, keys);
            return new Context(KeyValueCache.of(keyMatrix, new FloatMatrix(n, d, values)), keyMatrix,
                    near(random, keys, n, d, prefill), near(random, keys, n, d, queries));
        }

        private static FloatMatrix near(SplittableRandom random, float[] keys, int n, int d, int rows) {
            float[] out = new float[rows * d];
            for (int r = 0; r < rows; r++) {
                for (int copy = 0; copy < 3; copy++) {
                    int key = random.nextInt(n);
                    for (int t = 0; t < d; t++) {
                        out[r * d + t] += 0.6f * keys[key * d + t];
                    }
                }
                for (int t = 0; t < d; t++) {
                    out[r * d + t] += (float) (0.3 * random.nextGaussian());
                }
            }
            return new FloatMatrix(rows, d, out);
        }
    }
}
