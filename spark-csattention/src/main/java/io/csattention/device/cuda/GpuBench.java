package io.csattention.device.cuda;

import io.csattention.core.CSAttentionIndex;
import io.csattention.core.CSAttentionSettings;
import io.csattention.core.FloatMatrix;
import io.csattention.core.KeyValueCache;
import io.csattention.device.ContextDecoder;
import io.csattention.device.DecodeBackend;
import io.csattention.device.DecodedBlock;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * The measurements behind the GPU timing table of the {@code gpu-bench} command (which prints it, and which
 * {@code kernels/device-check.sh} runs): per context length, over {@code heads} separate heads resident on the GPU
 * at once (so that their K and V, {@code heads x n x d x 8} bytes, are far larger than the L2 and every decode reads
 * them from memory), index build milliseconds and decode microseconds per query and head for GPU csattention, the
 * exact GPU full attentions and CPU csattention; the bytes each decode asks of memory; how well the GPU decode agrees
 * with the CPU one.
 *
 * <p>Two times per GPU method: wall (System.nanoTime around the call: the query upload, the kernels, the result
 * download and the launch overhead) and kernel (CUDA events around the kernels only, {@link CudaEventTimer}). The
 * exact baselines: {@code full/query} is flash-decoding (one query per thread-block row, K and V streamed once, split
 * over keys and combined: {@code attend_partial} + {@code attend_combine}); {@code full} lets 8 queries share each K/V
 * read ({@code attend_all_tiled}); {@code gemm/B} computes a block of B queries that share the context as two matrix
 * products with a softmax between, as shared-prefix serving does, measured at each batch size B of
 * {@link Config#gemmBatches}. Bytes per query: csattention's from {@link DecodeBytes} (every kernel's reads and
 * writes), full attention's every K and V row (divided by the queries that share a read), the GEMM's from
 * {@link DecodeBytes#gemmAttentionPerQuery}.
 */
public final class GpuBench {

    /**
     * @param dim            head dimension d
     * @param queries        queries per decoded block
     * @param repetitions    timed rounds per measurement (after one warm-up); the median is reported
     * @param sparsity       share of keys not attended
     * @param prefillQueries prefill queries the index is built from
     * @param centroids      C per subspace
     * @param seed           seed of the synthetic context
     * @param heads          heads resident on the GPU at once, decoded in turn in every round
     * @param gemmBatches    batch sizes of the block-GEMM full attention
     */
    public record Config(int dim, int queries, int repetitions, double sparsity, int prefillQueries, int centroids,
                         long seed, int heads, int[] gemmBatches) {
    }

    /** Median microseconds per query and head of one method: wall clock, and the kernels alone by CUDA events. */
    public record Micros(double wall, double kernel) {
    }

    /**
     * The block-GEMM full attention at one batch size.
     *
     * @param batch queries per block
     * @param us    its time per query and head
     * @param bytes bytes per query it asks of memory
     */
    public record GemmTimes(int batch, Micros us, long bytes) {
    }

    /**
     * What one context length measured on the CPU, and on the GPU when there is one ({@code gpu == null} otherwise).
     *
     * @param tokens      N
     * @param cpuBuildMs  CPU index build of one head
     * @param cpuDecodeUs CPU csattention decode per query (one head)
     * @param sparseBytes bytes one csattention decode query asks of device memory ({@link DecodeBytes#total})
     * @param fullBytes   bytes one full-attention query reads when it reads every K and V row itself
     * @param tileShare   queries that share one K/V read in the tiled full attention
     * @param gpu         the GPU's measurements, or null
     */
    public record ContextTimes(int tokens, double cpuBuildMs, double cpuDecodeUs, long sparseBytes, long fullBytes,
                               long tileShare, GpuTimes gpu) {
    }

    /**
     * The GPU's timings, and the outputs the command compares (of the first head): the CPU and GPU decodes of the
     * CPU-built index, the CPU decode of the GPU-built index, and the full attentions.
     *
     * @param buildMs        GPU index build of one head (the mean over the heads)
     * @param sparseUs       GPU csattention decode per query and head
     * @param fullUs         GPU tiled full attention per query and head
     * @param fullPerQueryUs GPU flash-decoding full attention per query and head
     * @param gemm           the block-GEMM full attention, one entry per batch size
     * @param cpuDecode      the CPU decode of the CPU-built index
     * @param gpuDecode      the GPU decode of the CPU-built index
     * @param gpuIndexDecode the CPU decode of the GPU-built index
     * @param tiledFull      the tiled full attention's outputs
     * @param perQueryFull   flash-decoding's outputs
     * @param gemmFull       the block GEMM's outputs for the same block of queries
     */
    public record GpuTimes(double buildMs, Micros sparseUs, Micros fullUs, Micros fullPerQueryUs, List<GemmTimes> gemm,
                           DecodedBlock cpuDecode, DecodedBlock gpuDecode, DecodedBlock gpuIndexDecode,
                           FloatMatrix tiledFull, FloatMatrix perQueryFull, FloatMatrix gemmFull) {

        /** The smallest batch whose block GEMM beats csattention's kernel time per query, or -1 when none did. */
        public int crossoverBatch() {
            return gemm.stream().filter(g -> g.us().kernel() < sparseUs.kernel()).mapToInt(GemmTimes::batch).min()
                    .orElse(-1);
        }
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
            ((CudaContextDecoder) decoder).attendAllGemm(context.queries());
            ((CudaContextDecoder) decoder).attendAllPerQuery(context.queries());
        }
    }

    /** Measures one context of {@code n} tokens on {@code cpu}, and on {@code gpu} unless it is null. */
    public static ContextTimes measure(Config config, int n, CudaDecodeBackend gpu, DecodeBackend cpu) {
        int maxBatch = Math.max(config.queries(), Arrays.stream(config.gemmBatches()).max().orElse(0));
        Context first = Context.synthetic(n, config.dim(), config.prefillQueries(), maxBatch, config.seed() + n);
        FloatMatrix block = first.queries(config.queries());
        CSAttentionSettings settings = CSAttentionSettings.defaults().withSparsity(config.sparsity())
                .withCentroids(config.centroids()).withSeed(config.seed());

        long start = System.nanoTime();
        CSAttentionIndex cpuIndex = cpu.buildIndex(first.keys(), first.prefillQueries(), settings);
        double cpuBuildMs = (System.nanoTime() - start) / 1e6;
        long sparseBytes = DecodeBytes.of(cpuIndex, settings, config.dim()).total();
        long fullBytes = DecodeBytes.fullAttentionPerQuery(n, config.dim());

        DecodedBlock cpuBlock;
        double cpuDecodeUs;
        try (ContextDecoder decoder = cpu.open(first.cache(), cpuIndex, settings)) {
            cpuBlock = decoder.decode(block);
            cpuDecodeUs = medianWallMicros(config.repetitions(), config.queries(), () -> decoder.decode(block));
        }
        GpuTimes gpuTimes = gpu == null ? null : measureGpu(config, n, gpu, cpu, settings, first, cpuIndex, cpuBlock);
        return new ContextTimes(n, cpuBuildMs, cpuDecodeUs, sparseBytes, fullBytes, tileShare(config), gpuTimes);
    }

    private static GpuTimes measureGpu(Config config, int n, CudaDecodeBackend gpu, DecodeBackend cpu,
                                       CSAttentionSettings settings, Context first, CSAttentionIndex cpuIndex,
                                       DecodedBlock cpuBlock) {
        FloatMatrix block = first.queries(config.queries());
        List<CudaContextDecoder> decoders = new ArrayList<>();
        List<Context> contexts = new ArrayList<>();
        double buildMs = 0;
        CSAttentionIndex firstGpuIndex = null;
        try {
            for (int h = 0; h < config.heads(); h++) {
                Context context = h == 0 ? first : Context.synthetic(n, config.dim(), config.prefillQueries(),
                        first.queries().rows(), config.seed() + n + 7919L * h);
                long start = System.nanoTime();
                CSAttentionIndex gpuIndex = gpu.buildIndex(context.keys(), context.prefillQueries(), settings);
                buildMs += (System.nanoTime() - start) / 1e6;
                if (h == 0) {
                    firstGpuIndex = gpuIndex;
                }
                // the first head decodes the CPU-built index, so that its selection compares with the CPU's
                decoders.add((CudaContextDecoder) gpu.open(context.cache(), h == 0 ? cpuIndex : gpuIndex, settings));
                contexts.add(context);
            }
            CudaContextDecoder head0 = decoders.get(0);
            DecodedBlock gpuBlock = head0.decode(block);
            FloatMatrix tiled = head0.attendAll(block);
            FloatMatrix perQuery = head0.attendAllPerQuery(block);
            FloatMatrix gemmFull = head0.attendAllGemm(block);
            int q = config.queries();
            Micros sparse = overHeads(config, decoders, contexts, q, ContextDecoder::decode);
            Micros full = overHeads(config, decoders, contexts, q, ContextDecoder::attendAll);
            Micros flash = overHeads(config, decoders, contexts, q, CudaContextDecoder::attendAllPerQuery);
            List<GemmTimes> gemm = new ArrayList<>();
            for (int batch : config.gemmBatches()) {
                gemm.add(new GemmTimes(batch, overHeads(config, decoders, contexts, batch,
                        CudaContextDecoder::attendAllGemm),
                        DecodeBytes.gemmAttentionPerQuery(n, config.dim(), batch)));
            }
            DecodedBlock fromGpuIndex;
            try (ContextDecoder decoder = cpu.open(first.cache(), firstGpuIndex, settings)) {
                fromGpuIndex = decoder.decode(block);
            }
            return new GpuTimes(buildMs / config.heads(), sparse, full, flash, gemm, cpuBlock, gpuBlock, fromGpuIndex,
                    tiled, perQuery, gemmFull);
        } finally {
            decoders.forEach(CudaContextDecoder::close);
        }
    }

    /** Queries that share one K/V read in the tiled full attention: bytes per query divide by this. */
    private static long tileShare(Config config) {
        return Math.min(config.queries(), PtxFunction.QUERY_TILE);
    }

    private interface HeadCall {
        void run(CudaContextDecoder decoder, FloatMatrix queries);
    }

    /**
     * Median over rounds, per query and head, of one call per head in turn ({@code queries} queries each), by wall
     * clock and by the decoders' kernel events.
     */
    private static Micros overHeads(Config config, List<CudaContextDecoder> decoders, List<Context> contexts,
                                    int queries, HeadCall call) {
        List<FloatMatrix> inputs = contexts.stream().map(c -> c.queries(queries)).toList();
        double[] wall = new double[config.repetitions()];
        double[] kernel = new double[config.repetitions()];
        decoders.forEach(CudaContextDecoder::takeKernelMillis);
        for (int r = 0; r < wall.length; r++) {
            long start = System.nanoTime();
            double millis = 0;
            for (int h = 0; h < decoders.size(); h++) {
                call.run(decoders.get(h), inputs.get(h));
                millis += decoders.get(h).takeKernelMillis();
            }
            double calls = (double) queries * decoders.size();
            wall[r] = (System.nanoTime() - start) / 1e3 / calls;
            kernel[r] = millis * 1e3 / calls;
        }
        return new Micros(median(wall), median(kernel));
    }

    private static double medianWallMicros(int repetitions, int queries, Runnable block) {
        double[] micros = new double[repetitions];
        for (int r = 0; r < micros.length; r++) {
            long start = System.nanoTime();
            block.run();
            micros[r] = (System.nanoTime() - start) / 1e3 / queries;
        }
        return median(micros);
    }

    private static double median(double[] values) {
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        return sorted[sorted.length / 2];
    }

    /**
     * A synthetic context for timing: Gaussian keys and values; every query (prefill and decode) is a scaled sum of
     * three random keys plus noise, so attention has clear favourites as in real heads. Timing does not depend on
     * finer structure; accuracy is measured by the eval commands.
     */
    record Context(KeyValueCache cache, FloatMatrix keys, FloatMatrix prefillQueries, FloatMatrix queries) {

        /** The first {@code rows} decode queries. */
        FloatMatrix queries(int rows) {
            if (rows == queries.rows()) {
                return queries;
            }
            return new FloatMatrix(rows, queries.cols(), Arrays.copyOf(queries.data(), rows * queries.cols()));
        }

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
