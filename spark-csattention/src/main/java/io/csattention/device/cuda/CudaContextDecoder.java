package io.csattention.device.cuda;

import io.csattention.core.BudgetPlan;
import io.csattention.core.CSAttentionIndex;
import io.csattention.core.CSAttentionSettings;
import io.csattention.core.CentroidDistance;
import io.csattention.core.Check;
import io.csattention.core.FloatMatrix;
import io.csattention.core.KeySketch;
import io.csattention.core.KeyValueCache;
import io.csattention.core.PackedLists;
import io.csattention.device.ContextDecoder;
import io.csattention.device.CpuDecodeBackend;
import io.csattention.device.DecodedBlock;
import jcuda.Sizeof;
import jcuda.driver.JCudaDriver;

/**
 * One context resident on the GPU (keys, values, centroids, the packed lists, the key sketch), decoding blocks of
 * queries with the kernels of {@code decode.cu} and {@code attention.cu} on the algorithm of
 * {@link io.csattention.core.CSAttentionSelector}. Per block: nearest centroid per subspace; the chosen lists, in the
 * CPU's packed form ({@link PackedLists}, uploaded as built on the host), summed as integers into a row per query (one
 * launch for all subspaces: integer atomics add in any order to the CPU's sums); the top candidates by that sum (ties
 * to the lower key); their re-scoring over the int8 {@link KeySketch} and the best {@code chosen} of them; sink and
 * window keys; attention over the selection, split over the keys and combined. The selection is the CPU's except
 * where the float steps (the centroid choice, the re-scoring's sum) meet near-ties. Queries go up and results come
 * down through pinned buffers on one stream; every buffer is reused across blocks. Large blocks are cut into launches
 * whose sum rows fit in {@value #SCORE_BYTES} bytes.
 */
final class CudaContextDecoder implements ContextDecoder {

    private static final long SCORE_BYTES = 256L << 20;
    private static final int MAX_QUERIES_PER_LAUNCH = 1024;
    static final int ATTENTION_CHUNK = 256;
    /** Keys per split of {@code gemm_values}: enough thread blocks to fill a large GPU at 128K keys and 64 queries. */
    static final int GEMM_SPLIT_KEYS = 2048;
    private static final int TOP_K_THREADS = 1024;
    private static final int SUBSPACE_LIMIT = 256;

    private final CudaDevice device;
    private final CudaStream stream;
    private final BudgetPlan plan;
    private final int n;
    private final int d;
    private final boolean indexed;
    private final int subspaces;
    private final int centroidCount;
    private final int listLength;
    private final int packedBlocks;
    private final int useL2;
    private final double rescoreFactor;
    private final int queriesPerLaunch;

    private final DeviceBuffer keys = new DeviceBuffer("keys");
    private final DeviceBuffer values = new DeviceBuffer("values");
    private final DeviceBuffer centroids = new DeviceBuffer("centroids");
    private final DeviceBuffer listStarts = new DeviceBuffer("packed list block starts");
    private final DeviceBuffer listOffsets = new DeviceBuffer("packed list key offsets");
    private final DeviceBuffer listUnits = new DeviceBuffer("packed list units");
    private final DeviceBuffer sketchCodes = new DeviceBuffer("key sketch codes");
    private final DeviceBuffer sketchScales = new DeviceBuffer("key sketch scales");
    private final DeviceBuffer queries = new DeviceBuffer("queries");
    private final DeviceBuffer lists = new DeviceBuffer("chosen lists");
    private final DeviceBuffer sums = new DeviceBuffer("list sums");
    private final DeviceBuffer candidates = new DeviceBuffer("candidates");
    private final DeviceBuffer exact = new DeviceBuffer("exact scores");
    private final DeviceBuffer selected = new DeviceBuffer("selected");
    private final DeviceBuffer partMax = new DeviceBuffer("attention partial max");
    private final DeviceBuffer partSum = new DeviceBuffer("attention partial sum");
    private final DeviceBuffer partAcc = new DeviceBuffer("attention partial values");
    private final DeviceBuffer output = new DeviceBuffer("outputs");
    private final DeviceBuffer gemmScores = new DeviceBuffer("gemm score rows");
    private final DeviceBuffer gemmRowSums = new DeviceBuffer("gemm row sums");
    private final DeviceBuffer gemmPartial = new DeviceBuffer("gemm partial outputs");
    private final PinnedBuffer hostQueries = new PinnedBuffer("queries");
    private final PinnedBuffer hostSelected = new PinnedBuffer("selected");
    private final PinnedBuffer hostOutput = new PinnedBuffer("outputs");
    private final CudaEventTimer kernelTimer;
    private boolean closed;

    CudaContextDecoder(CudaDevice device, KeyValueCache cache, CSAttentionIndex index, CSAttentionSettings settings) {
        this(device, cache, index, index == null ? null : PackedLists.of(index),
                index != null && settings.rescoreFactor() > 0 ? KeySketch.of(cache) : null, settings);
    }

    /**
     * A decoder on the decode form a CPU selector already holds ({@code packed}, {@code sketch}: null when
     * {@code settings} re-score nothing), for an index whose build-form lists the selector dropped.
     */
    CudaContextDecoder(CudaDevice device, KeyValueCache cache, CSAttentionIndex index, PackedLists packed,
                       KeySketch sketch, CSAttentionSettings settings) {
        Check.that(index == null || (sketch != null) == (settings.rescoreFactor() > 0),
                "the key sketch must be given exactly when rescoreFactor > 0", "rescoreFactor",
                settings.rescoreFactor());
        this.device = device;
        this.plan = settings.plan(cache.size());
        this.n = cache.size();
        this.d = cache.dim();
        this.indexed = index != null;
        this.subspaces = indexed ? index.subspaces() : 0;
        this.centroidCount = indexed ? index.centroidCount() : 0;
        this.listLength = indexed ? index.listLength() : 0;
        this.useL2 = indexed && index.distance() == CentroidDistance.L2 ? 1 : 0;
        this.rescoreFactor = settings.rescoreFactor();
        this.queriesPerLaunch = (int) Math.max(1, Math.min(MAX_QUERIES_PER_LAUNCH,
                SCORE_BYTES / ((long) n * Sizeof.INT)));
        this.packedBlocks = indexed ? packed.blocks() : 0;
        device.makeCurrent();
        this.stream = new CudaStream(device);
        this.kernelTimer = new CudaEventTimer(stream);
        boolean full = cache.precision() == KeyValueCache.Precision.F32;
        keys.upload(full ? cache.keys() : cache.keyMatrix().data(), n * d);
        values.upload(full ? cache.values() : cache.valueMatrix().data(), n * d);
        if (indexed) {
            centroids.upload(index.centroids(), index.centroids().length);
            listStarts.upload(packed.starts(), packed.starts().length);
            listOffsets.upload(packed.offsets(), packed.offsets().length);
            listUnits.upload(packed.units(), packed.units().length);
        }
        if (sketch != null) {
            sketchCodes.upload(sketch.codes(), n * d);
            sketchScales.upload(sketch.scales(), n);
        }
    }

    /**
     * What the GPU decoder needs of an index beyond {@link CpuDecodeBackend#checkContext}: the kernels order list sums
     * as 16-bit keys ({@code sum + 32768}), which holds for fewer than {@value #SUBSPACE_LIMIT} subspaces of 8-bit
     * units (the CPU decoder's limit too), and they take the query as it is, without the de-rotation of RoPE bands.
     */
    static void checkIndex(CSAttentionIndex index) {
        if (index == null) {
            return;
        }
        Check.that(index.subspaces() < SUBSPACE_LIMIT, "subspaces must be < " + SUBSPACE_LIMIT, "index.subspaces",
                index.subspaces());
        Check.that(index.rope() == null, "the GPU decoder takes an index built without RoPE information (the CPU "
                + "decoder de-rotates its slow bands)", "index.rope", "set");
    }

    @Override
    public BudgetPlan plan() {
        return plan;
    }

    @Override
    public synchronized DecodedBlock decode(FloatMatrix block) {
        Check.that(indexed, "decode needs an index; open the context with one", "index", "null");
        checkOpen();
        CpuDecodeBackend.checkQueries(block, d);
        device.makeCurrent();
        int budget = plan.budget();
        int[] selection = new int[block.rows() * budget];
        float[] outputs = new float[block.rows() * d];
        for (int first = 0; first < block.rows(); first += queriesPerLaunch) {
            int count = Math.min(queriesPerLaunch, block.rows() - first);
            upload(block.data(), first, count);
            kernelTimer.start();
            select(count);
            attend(count, selected, budget, budget);
            kernelTimer.stop();
            download(count, first, selection, outputs);
            kernelTimer.collect();
        }
        return new DecodedBlock(plan, selection, new FloatMatrix(block.rows(), d, outputs));
    }

    /**
     * Full attention with K/V reads shared by the queries of a block ({@code attend_all_tiled}, the fair baseline for
     * many queries per context); per query for head dimensions too large for its shared-memory tile.
     */
    @Override
    public synchronized FloatMatrix attendAll(FloatMatrix block) {
        return attendAll(block, (long) PtxFunction.QUERY_TILE * (d + ATTENTION_CHUNK) * Sizeof.FLOAT <= 48 * 1024);
    }

    /** Full attention reading every K/V row once per query (the cost of decoding independent sequences). */
    synchronized FloatMatrix attendAllPerQuery(FloatMatrix block) {
        return attendAll(block, false);
    }

    /**
     * Full attention as two matrix products over the block's queries with a softmax between ({@code gemm_scores},
     * {@code softmax_rows}, {@code gemm_values} split over {@value #GEMM_SPLIT_KEYS} keys, {@code gemm_sum_splits}):
     * each K and V row read once per {@value PtxFunction#GEMM_TILE} queries, the score rows written and read back.
     */
    synchronized FloatMatrix attendAllGemm(FloatMatrix block) {
        return attendAll(block, Form.GEMM);
    }

    /**
     * Device milliseconds of the kernels of every {@code decode} and full attention since the last call (CUDA events
     * on the decoder's stream around the kernels of each launch, the query upload and result download outside them),
     * and starts counting again.
     */
    synchronized double takeKernelMillis() {
        return kernelTimer.take();
    }

    private enum Form { PER_QUERY, TILED, GEMM }

    private FloatMatrix attendAll(FloatMatrix block, boolean tiled) {
        return attendAll(block, tiled ? Form.TILED : Form.PER_QUERY);
    }

    private FloatMatrix attendAll(FloatMatrix block, Form form) {
        checkOpen();
        CpuDecodeBackend.checkQueries(block, d);
        device.makeCurrent();
        float[] outputs = new float[block.rows() * d];
        for (int first = 0; first < block.rows(); first += queriesPerLaunch) {
            int count = Math.min(queriesPerLaunch, block.rows() - first);
            upload(block.data(), first, count);
            kernelTimer.start();
            switch (form) {
                case TILED -> attendAllTiled(count);
                case GEMM -> attendAllGemm(count);
                case PER_QUERY -> attend(count, null, n, 0);
            }
            kernelTimer.stop();
            download(count, first, null, outputs);
            kernelTimer.collect();
        }
        return new FloatMatrix(block.rows(), d, outputs);
    }

    private void attendAllGemm(int count) {
        int splits = Cuda.blocks(n, GEMM_SPLIT_KEYS);
        gemmScores.ensureFloats((long) count * n);
        gemmRowSums.ensureFloats(count);
        gemmPartial.ensureFloats((long) splits * count * d);
        output.ensureFloats((long) count * d);
        float scale = (float) (1.0 / Math.sqrt(d));
        int rowTiles = Cuda.blocks(count, PtxFunction.GEMM_TILE);
        device.kernel(PtxFunction.GEMM_SCORES).launch(stream, Cuda.blocks(n, PtxFunction.GEMM_TILE), rowTiles, 256, 0,
                queries, count, keys, n, d, scale, gemmScores);
        device.kernel(PtxFunction.SOFTMAX_ROWS).launch(stream, count, 1, 1024, 0, gemmScores, n, gemmRowSums);
        device.kernel(PtxFunction.GEMM_VALUES).launch(stream, Cuda.blocks(d, PtxFunction.GEMM_TILE) * splits, rowTiles,
                256, 0, gemmScores, count, values, n, d, GEMM_SPLIT_KEYS, gemmPartial);
        device.kernel(PtxFunction.GEMM_SUM_SPLITS).launch(stream, Cuda.blocks(count * d, 256), 1, 256, 0, gemmPartial,
                splits, count, d, gemmRowSums, output);
    }

    private void attendAllTiled(int count) {
        int splits = partialBuffers(count, n);
        float scale = (float) (1.0 / Math.sqrt(d));
        device.kernel(PtxFunction.ATTEND_ALL_TILED).launch(stream, splits, Cuda.blocks(count, PtxFunction.QUERY_TILE), 128,
                PtxFunction.QUERY_TILE * (d + ATTENTION_CHUNK) * Sizeof.FLOAT, queries, count, keys, values, d, n,
                ATTENTION_CHUNK, scale, partMax, partSum, partAcc);
        device.kernel(PtxFunction.ATTEND_COMBINE).launch(stream, count, 1, 128, 0, partMax, partSum, partAcc, splits, d,
                output);
    }

    private void upload(float[] data, int first, int count) {
        long bytes = (long) count * d * Sizeof.FLOAT;
        hostQueries.ensure(bytes);
        hostQueries.bytes().asFloatBuffer().put(data, first * d, count * d);
        queries.ensure(bytes);
        Cuda.check(JCudaDriver.cuMemcpyHtoDAsync(queries.pointer(), hostQueries.pointer(), bytes, stream.handle()),
                "cuMemcpyHtoDAsync(queries)");
    }

    /** Fills {@code selected} [count, budget] as {@code CSAttentionSelector} + {@code Selections.assembleAscending}. */
    private void select(int count) {
        int budget = plan.budget();
        int from = plan.middleStart();
        int to = plan.middleEnd();
        int chosen = plan.chosen();
        selected.ensureInts((long) count * budget);
        lists.ensureInts((long) count * subspaces);
        device.kernel(PtxFunction.NEAREST_CENTROIDS).launch(stream, subspaces, count, 128, 0, queries, d, subspaces,
                centroidCount, centroids, useL2, lists);
        if (chosen > 0) {
            sums.ensureInts((long) count * n);
            Cuda.check(JCudaDriver.cuMemsetD32Async(sums.pointer(), 0, (long) count * n, stream.handle()),
                    "cuMemsetD32Async(list sums)");
            device.kernel(PtxFunction.ACCUMULATE_LISTS).launch(stream, Cuda.blocks(subspaces * listLength, 256), count,
                    256, 0, lists, subspaces, listStarts, packedBlocks, listOffsets, listUnits, listLength, from, to,
                    sums, n);
            // as CSAttentionSelector: the candidates re-scored, or with rescoreFactor 0 the chosen keys themselves
            int wanted = rescoreFactor > 0 ? (int) Math.min(to - from, Math.ceil(rescoreFactor * chosen)) : chosen;
            CudaFunction topSums = device.kernel(PtxFunction.TOP_K_SUMS);
            if (rescoreFactor > 0 && wanted > chosen) {
                candidates.ensureInts((long) count * wanted);
                exact.ensureFloats((long) count * wanted);
                topSums.launch(stream, count, 1, TOP_K_THREADS, 0, sums, n, from, to, wanted, candidates, wanted, 0);
                device.kernel(PtxFunction.RESCORE_CODES).launch(stream, Cuda.blocks(wanted, 8), count, 256, 0, queries,
                        sketchCodes, sketchScales, d, candidates, wanted, exact);
                device.kernel(PtxFunction.TOP_K_ROWS).launch(stream, count, 1, TOP_K_THREADS, 0, exact, (long) wanted,
                        0, candidates, wanted, 0, wanted, chosen, selected, budget, plan.sink());
            } else {
                topSums.launch(stream, count, 1, TOP_K_THREADS, 0, sums, n, from, to, chosen, selected, budget,
                        plan.sink());
            }
        }
        if (plan.sink() + plan.window() > 0) {
            device.kernel(PtxFunction.SINK_AND_WINDOW).launch(stream, count, 1, 128, 0, selected, budget, plan.sink(),
                    plan.window(), n);
        }
    }

    /**
     * Sizes the per-split partial results (max, sum, accumulator) and the outputs for {@code count} queries over
     * {@code keyCount} keys split in chunks of {@value #ATTENTION_CHUNK}; returns the number of splits.
     */
    private int partialBuffers(int count, int keyCount) {
        int splits = Cuda.blocks(keyCount, ATTENTION_CHUNK);
        partMax.ensureFloats((long) count * splits);
        partSum.ensureFloats((long) count * splits);
        partAcc.ensureFloats((long) count * splits * d);
        output.ensureFloats((long) count * d);
        return splits;
    }

    /** outputs [count, d] = softmax attention over {@code selection} rows (or every key when null). */
    private void attend(int count, DeviceBuffer selection, int keyCount, int selectionStride) {
        int splits = partialBuffers(count, keyCount);
        float scale = (float) (1.0 / Math.sqrt(d));
        device.kernel(PtxFunction.ATTEND_PARTIAL).launch(stream, splits, count, 128,
                (d + ATTENTION_CHUNK) * Sizeof.FLOAT, queries, keys, values, d, selection, selectionStride, keyCount,
                ATTENTION_CHUNK, scale, partMax, partSum, partAcc);
        device.kernel(PtxFunction.ATTEND_COMBINE).launch(stream, count, 1, 128, 0, partMax, partSum, partAcc, splits, d,
                output);
    }

    private void download(int count, int first, int[] selection, float[] outputs) {
        long outputBytes = (long) count * d * Sizeof.FLOAT;
        hostOutput.ensure(outputBytes);
        Cuda.check(JCudaDriver.cuMemcpyDtoHAsync(hostOutput.pointer(), output.pointer(), outputBytes,
                stream.handle()), "cuMemcpyDtoHAsync(outputs)");
        int budget = plan.budget();
        long selectedBytes = (long) count * budget * Sizeof.INT;
        if (selection != null) {
            hostSelected.ensure(selectedBytes);
            Cuda.check(JCudaDriver.cuMemcpyDtoHAsync(hostSelected.pointer(), selected.pointer(), selectedBytes,
                    stream.handle()), "cuMemcpyDtoHAsync(selected)");
        }
        stream.synchronize();
        hostOutput.bytes().asFloatBuffer().get(outputs, first * d, count * d);
        if (selection != null) {
            hostSelected.bytes().asIntBuffer().get(selection, first * budget, count * budget);
        }
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("decoder is closed");
        }
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        device.makeCurrent();
        for (DeviceBuffer buffer : new DeviceBuffer[] {keys, values, centroids, listStarts, listOffsets, listUnits,
                sketchCodes, sketchScales, queries, lists, sums, candidates, exact, selected, partMax, partSum, partAcc,
                output, gemmScores, gemmRowSums, gemmPartial}) {
            buffer.close();
        }
        hostQueries.close();
        hostSelected.close();
        hostOutput.close();
        kernelTimer.close();
        stream.close();
    }
}
