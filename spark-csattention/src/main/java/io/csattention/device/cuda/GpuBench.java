package io.csattention.device.cuda;

import io.csattention.core.CSAttentionIndex;
import io.csattention.core.CSAttentionSettings;
import io.csattention.core.FloatMatrix;
import io.csattention.core.KeyValueCache;
import io.csattention.device.ContextDecoder;
import io.csattention.device.DecodeBackend;
import io.csattention.device.DecodedBlock;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * The measurements behind the GPU timing table of the {@code gpu-bench} command (which prints it, and which
 * {@code kernels/device-check.sh} runs): per context length, index build milliseconds and decode microseconds per
 * query for GPU csattention, GPU full attention and CPU csattention, the bytes each decode reads, and how well the GPU
 * decode agrees with the CPU one. Bytes per query count what the issue counts: for csattention the m chosen lists
 * (4-byte id and 4-byte score per entry) plus the selected keys' K and V rows; for full attention every K and V row,
 * divided by the queries that share one read in the tiled kernel ({@code full}); {@code full/query} reads them once
 * per query, as decoding independent sequences would, and its error compares its outputs with the tiled kernel's.
 */
public final class GpuBench {

    /**
     * @param dim            head dimension d
     * @param queries        queries per decoded block
     * @param repetitions    timed blocks per measurement (after one warm-up); the median is reported
     * @param sparsity       share of keys not attended
     * @param prefillQueries prefill queries the index is built from
     * @param centroids      C per subspace
     * @param seed           seed of the synthetic context
     */
    public record Config(int dim, int queries, int repetitions, double sparsity, int prefillQueries, int centroids,
                         long seed) {
    }

    /**
     * What one context length measured on the CPU, and on the GPU when there is one ({@code gpu == null} otherwise).
     *
     * @param tokens      N
     * @param cpuBuildMs  CPU index build
     * @param cpuDecodeUs CPU csattention decode per query
     * @param sparseBytes bytes one csattention decode query reads
     * @param fullBytes   bytes one full-attention query reads when it reads every K and V row itself
     * @param tileShare   queries that share one K/V read in the tiled full attention
     * @param gpu         the GPU's measurements, or null
     */
    public record ContextTimes(int tokens, double cpuBuildMs, double cpuDecodeUs, long sparseBytes, long fullBytes,
                               long tileShare, GpuTimes gpu) {
    }

    /**
     * The GPU's timings, and the outputs the command compares: the CPU and GPU decodes of the CPU-built index, the
     * CPU decode of the GPU-built index, and the two full attentions.
     *
     * @param buildMs          GPU index build
     * @param sparseUs         GPU csattention decode per query (of the CPU-built index)
     * @param fullUs           GPU tiled full attention per query
     * @param fullPerQueryUs   GPU full attention reading K and V once per query
     * @param cpuDecode        the CPU decode of the CPU-built index
     * @param gpuDecode        the GPU decode of the CPU-built index
     * @param gpuIndexDecode   the CPU decode of the GPU-built index
     * @param tiledFull        the tiled full attention's outputs
     * @param perQueryFull     full/query's outputs
     */
    public record GpuTimes(double buildMs, double sparseUs, double fullUs, double fullPerQueryUs,
                           DecodedBlock cpuDecode, DecodedBlock gpuDecode, DecodedBlock gpuIndexDecode,
                           FloatMatrix tiledFull, FloatMatrix perQueryFull) {
    }

    private GpuBench() {
    }

    /** One small build and decode, untimed, so that first-use costs (allocation, JIT of the PTX) stay out. */
    public static void warmUp(Config config, CudaDecodeBackend gpu) {
        Context context = Context.synthetic(4096, config.dim(), 512, config.queries(), config.seed());
        CSAttentionSettings settings = CSAttentionSettings.defaults().withSparsity(config.sparsity())
                .withCentroids(Math.min(64, config.centroids())).withSeed(config.seed());
        CSAttentionIndex index = gpu.buildIndex(context.keys(), context.prefillQueries(), settings);
        try (ContextDecoder decoder = gpu.open(context.cache(), index, settings)) {
            decoder.decode(context.queries());
            decoder.attendAll(context.queries());
        }
    }

    /** Measures one context of {@code n} tokens on {@code cpu}, and on {@code gpu} unless it is null. */
    public static ContextTimes measure(Config config, int n, CudaDecodeBackend gpu, DecodeBackend cpu) {
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
        GpuTimes gpuTimes = null;
        if (gpu != null) {
            start = System.nanoTime();
            CSAttentionIndex gpuIndex = gpu.buildIndex(context.keys(), context.prefillQueries(), settings);
            double gpuBuildMs = (System.nanoTime() - start) / 1e6;
            double gpuSparseUs;
            double gpuFullUs;
            double gpuFullPerQueryUs;
            DecodedBlock gpuBlock;
            FloatMatrix tiled;
            FloatMatrix perQuery;
            try (ContextDecoder decoder = gpu.open(context.cache(), cpuIndex, settings)) {
                gpuBlock = decoder.decode(context.queries());
                gpuSparseUs = medianMicrosPerQuery(config, () -> decoder.decode(context.queries()));
                tiled = decoder.attendAll(context.queries());
                gpuFullUs = medianMicrosPerQuery(config, () -> decoder.attendAll(context.queries()));
                CudaContextDecoder cuda = (CudaContextDecoder) decoder;
                perQuery = cuda.attendAllPerQuery(context.queries());
                gpuFullPerQueryUs = medianMicrosPerQuery(config, () -> cuda.attendAllPerQuery(context.queries()));
            }
            DecodedBlock fromGpuIndex;
            try (ContextDecoder decoder = cpu.open(context.cache(), gpuIndex, settings)) {
                fromGpuIndex = decoder.decode(context.queries());
            }
            gpuTimes = new GpuTimes(gpuBuildMs, gpuSparseUs, gpuFullUs, gpuFullPerQueryUs, cpuBlock, gpuBlock,
                    fromGpuIndex, tiled, perQuery);
        }
        return new ContextTimes(n, cpuBuildMs, cpuDecodeUs, sparseBytes, fullBytes, tileShare(config), gpuTimes);
    }

    /** Queries that share one K/V read in the tiled full attention: bytes per query divide by this. */
    private static long tileShare(Config config) {
        return Math.min(config.queries(), PtxFunction.QUERY_TILE);
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
