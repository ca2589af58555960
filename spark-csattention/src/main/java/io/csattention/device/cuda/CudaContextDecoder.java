package io.csattention.device.cuda;

import io.csattention.core.BudgetPlan;
import io.csattention.core.CSAttentionIndex;
import io.csattention.core.CSAttentionSettings;
import io.csattention.core.CentroidDistance;
import io.csattention.core.Check;
import io.csattention.core.FloatMatrix;
import io.csattention.core.KeyValueCache;
import io.csattention.device.ContextDecoder;
import io.csattention.device.CpuDecodeBackend;
import io.csattention.device.DecodedBlock;
import jcuda.Sizeof;
import jcuda.driver.JCudaDriver;

/**
 * One context resident on the GPU (keys, values, centroids, lists, estimates), decoding blocks of queries with the
 * kernels of {@code decode.cu} and {@code attention.cu}. Per block: nearest centroid per subspace; the chosen lists
 * summed into a score row per query (one launch per subspace, in order); the top candidates by accumulated score; their
 * exact re-scoring and the best {@code chosen} of them; sink and window keys; attention over the selection, split over
 * the keys and combined. Queries go up and results come down through pinned buffers on one stream; every buffer is
 * reused across blocks. Large blocks are cut into launches whose score rows fit in {@value #SCORE_BYTES} bytes.
 */
final class CudaContextDecoder implements ContextDecoder {

    private static final long SCORE_BYTES = 256L << 20;
    private static final int MAX_QUERIES_PER_LAUNCH = 1024;
    private static final int ATTENTION_CHUNK = 256;
    private static final int TOP_K_THREADS = 1024;
    private static final int NEGATIVE_INFINITY_BITS = Float.floatToRawIntBits(Float.NEGATIVE_INFINITY);

    private final CudaDevice device;
    private final CudaStream stream;
    private final BudgetPlan plan;
    private final int n;
    private final int d;
    private final boolean indexed;
    private final int subspaces;
    private final int centroidCount;
    private final int listLength;
    private final int useL2;
    private final double rescoreFactor;
    private final int queriesPerLaunch;

    private final DeviceBuffer keys = new DeviceBuffer("keys");
    private final DeviceBuffer values = new DeviceBuffer("values");
    private final DeviceBuffer centroids = new DeviceBuffer("centroids");
    private final DeviceBuffer listIds = new DeviceBuffer("list ids");
    private final DeviceBuffer listScores = new DeviceBuffer("list scores");
    private final DeviceBuffer missing = new DeviceBuffer("missing estimates");
    private final DeviceBuffer queries = new DeviceBuffer("queries");
    private final DeviceBuffer lists = new DeviceBuffer("chosen lists");
    private final DeviceBuffer scores = new DeviceBuffer("accumulated scores");
    private final DeviceBuffer candidates = new DeviceBuffer("candidates");
    private final DeviceBuffer exact = new DeviceBuffer("exact scores");
    private final DeviceBuffer selected = new DeviceBuffer("selected");
    private final DeviceBuffer partMax = new DeviceBuffer("attention partial max");
    private final DeviceBuffer partSum = new DeviceBuffer("attention partial sum");
    private final DeviceBuffer partAcc = new DeviceBuffer("attention partial values");
    private final DeviceBuffer output = new DeviceBuffer("outputs");
    private final PinnedBuffer hostQueries = new PinnedBuffer("queries");
    private final PinnedBuffer hostSelected = new PinnedBuffer("selected");
    private final PinnedBuffer hostOutput = new PinnedBuffer("outputs");
    private boolean closed;

    CudaContextDecoder(CudaDevice device, KeyValueCache cache, CSAttentionIndex index, CSAttentionSettings settings) {
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
                SCORE_BYTES / ((long) n * Sizeof.FLOAT)));
        device.makeCurrent();
        this.stream = new CudaStream(device);
        keys.upload(cache.keys(), n * d);
        values.upload(cache.values(), n * d);
        if (indexed) {
            centroids.upload(index.centroids(), index.centroids().length);
            listIds.upload(index.listIds(), index.listIds().length);
            listScores.upload(index.listScores(), index.listScores().length);
            missing.upload(index.missing(), index.missing().length);
        }
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
            select(count);
            attend(count, selected, budget, budget);
            download(count, first, selection, outputs);
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

    private FloatMatrix attendAll(FloatMatrix block, boolean tiled) {
        checkOpen();
        CpuDecodeBackend.checkQueries(block, d);
        device.makeCurrent();
        float[] outputs = new float[block.rows() * d];
        for (int first = 0; first < block.rows(); first += queriesPerLaunch) {
            int count = Math.min(queriesPerLaunch, block.rows() - first);
            upload(block.data(), first, count);
            if (tiled) {
                attendAllTiled(count);
            } else {
                attend(count, null, n, 0);
            }
            download(count, first, null, outputs);
        }
        return new FloatMatrix(block.rows(), d, outputs);
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

    /** Fills {@code selected} [count, budget] as {@code CSAttentionSelector} + {@code Selections.assemble} do. */
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
            scores.ensureFloats((long) count * n);
            Cuda.check(JCudaDriver.cuMemsetD32Async(scores.pointer(), NEGATIVE_INFINITY_BITS, (long) count * n,
                    stream.handle()), "cuMemsetD32Async(accumulated scores)");
            CudaFunction accumulate = device.kernel(PtxFunction.ACCUMULATE_LIST);
            for (int j = 0; j < subspaces; j++) {
                accumulate.launch(stream, Cuda.blocks(listLength, 256), count, 256, 0, lists, subspaces, j, listIds,
                        listScores, missing, listLength, from, to, scores, n);
            }
            int wanted = rescoreFactor > 0 ? (int) Math.min(to - from, Math.ceil(rescoreFactor * chosen)) : chosen;
            CudaFunction topK = device.kernel(PtxFunction.TOP_K_ROWS);
            if (wanted > chosen) {
                candidates.ensureInts((long) count * wanted);
                exact.ensureFloats((long) count * wanted);
                topK.launch(stream, count, 1, TOP_K_THREADS, 0, scores, (long) n, from, null, 0, from, to - from,
                        wanted, candidates, wanted, 0);
                device.kernel(PtxFunction.RESCORE).launch(stream, Cuda.blocks(wanted, 8), count, 256, 0, queries, keys, d,
                        candidates, wanted, exact);
                topK.launch(stream, count, 1, TOP_K_THREADS, 0, exact, (long) wanted, 0, candidates, wanted, 0,
                        wanted, chosen, selected, budget, plan.sink());
            } else {
                topK.launch(stream, count, 1, TOP_K_THREADS, 0, scores, (long) n, from, null, 0, from, to - from,
                        chosen, selected, budget, plan.sink());
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
        for (DeviceBuffer buffer : new DeviceBuffer[] {keys, values, centroids, listIds, listScores, missing, queries,
                lists, scores, candidates, exact, selected, partMax, partSum, partAcc, output}) {
            buffer.close();
        }
        hostQueries.close();
        hostSelected.close();
        hostOutput.close();
        stream.close();
    }
}
