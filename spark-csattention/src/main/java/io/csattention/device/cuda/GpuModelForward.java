package io.csattention.device.cuda;

import io.csattention.core.Check;
import io.csattention.core.FloatMatrix;
import io.csattention.core.KeyValueCache;
import io.csattention.device.ForwardModel;
import io.csattention.device.PrefillDevice;
import jcuda.Pointer;
import jcuda.Sizeof;
import jcuda.driver.JCudaDriver;

import java.util.ArrayList;
import java.util.List;

/**
 * The prefill of a context through a Llama-family model ({@link ForwardModel}; {@code LlamaForwardModel.of} adapts a
 * {@code LlamaModel}) on one CUDA device, layer by layer as
 * {@code Session.prefill} runs it on the CPU, with the kernels of {@code kernels/src/forward.cu}: every weight matrix
 * decoded once to float32 on upload ({@link ForwardModel.Matrix#row}) and multiplied by the project's tiled GEMM
 * ({@code linear}, float32 accumulation; no cuBLAS, {@code kernels/README.md} says why), RMSNorm, RoPE on interleaved
 * pairs with the model's frequencies, the SiLU gate, the residual adds fused into the output projections, and causal
 * attention over the context in the flash-attention form ({@code attend_causal}, GQA). The embedding rows are looked
 * up on the host. Tokens go through in blocks of {@code blockTokens}; every block attends the keys of all earlier
 * positions and its own, causally, so the result does not depend on the block size.
 *
 * <p>The keys, values and (rotated) queries of every layer stay on the device for the whole context, in position
 * order ({@code [maxTokens, kvDim]} and {@code [maxTokens, dim]}); {@link #layerRows} copies one layer's rows to the
 * host as the CPU forward pass lays them out (what {@code Session.loadPrefill} appends, the route of
 * {@code DevicePrefill}), and {@link #keys}, {@link #values} and {@link #prefillQueries} copy one KV head's rows in
 * the layouts the index build takes ({@code Session.cache}, {@code Session.prefillQueries}). Handing them to
 * {@link CudaIndexBuilder} without the host round trip is not done yet: that builder takes host matrices (its
 * k-means++ start runs on the CPU).
 *
 * <p>Not thread-safe beyond its synchronized methods; one instance holds one sequence.
 */
public final class GpuModelForward implements PrefillDevice {

    /** Tokens per block by default: large enough to fill the GEMM tiles, small enough for the activations. */
    public static final int DEFAULT_BLOCK = 512;
    /** Floats of a weight matrix decoded on the host per upload (64 MB), whatever the matrix's size. */
    private static final int UPLOAD_FLOATS = 1 << 24;
    private static final int NORM_THREADS = 256;
    private static final int ROPE_THREADS = 128;
    private static final int ATTENTION_THREADS = 128;
    private static final int GEMM_THREADS = 256;

    private final ForwardModel model;
    private final Shape config;
    private final int maxTokens;
    private final int blockTokens;
    private final CudaDevice device;
    private final CudaStream stream;
    private final List<DeviceBuffer> buffers = new ArrayList<>();
    private final List<Layer> layers = new ArrayList<>();
    private final DeviceBuffer finalNorm;
    private final DeviceBuffer classifier;
    private final DeviceBuffer frequencies;
    private final DeviceBuffer x;
    private final DeviceBuffer xb;
    private final DeviceBuffer att;
    private final DeviceBuffer gate;
    private final DeviceBuffer up;
    private final DeviceBuffer positions;
    private final DeviceBuffer last;
    private final DeviceBuffer logits;
    private int position;
    private boolean closed;

    /** A layer's weights and its share of the context (keys, values, queries by position). */
    private record Layer(DeviceBuffer attentionNorm, DeviceBuffer wq, DeviceBuffer wk, DeviceBuffer wv,
                         DeviceBuffer wo, DeviceBuffer qBias, DeviceBuffer kBias, DeviceBuffer vBias,
                         DeviceBuffer ffnNorm, DeviceBuffer gate, DeviceBuffer up, DeviceBuffer down,
                         DeviceBuffer keys, DeviceBuffer values, DeviceBuffer queries) {
    }

    /** The sizes the kernels and the memory estimate depend on. */
    record Shape(int dim, int hiddenDim, int layers, int heads, int kvHeads, int vocabSize, int contextLength,
                 int ropeDim, boolean biases) {

        static Shape of(ForwardModel m) {
            boolean biases = false;
            for (int l = 0; l < m.layers(); l++) {
                ForwardModel.Layer layer = m.layer(l);
                biases |= layer.qBias() != null || layer.kBias() != null || layer.vBias() != null;
            }
            return new Shape(m.dim(), m.hiddenDim(), m.layers(), m.heads(), m.kvHeads(), m.vocabSize(),
                    m.contextLength(), m.ropeDim(), biases);
        }

        int headSize() {
            return dim / heads;
        }

        int kvDim() {
            return kvHeads * headSize();
        }

        int groupSize() {
            return heads / kvHeads;
        }
    }

    /** {@link #open(ForwardModel, int, int, int)} with {@value #DEFAULT_BLOCK}-token blocks. */
    public static GpuModelForward open(ForwardModel model, int maxTokens, int gpuOrdinal) {
        return open(model, maxTokens, DEFAULT_BLOCK, gpuOrdinal);
    }

    /**
     * Uploads the model's weights to GPU {@code gpuOrdinal} and reserves the device memory of a context of up to
     * {@code maxTokens} tokens. Throws {@link IllegalArgumentException} for a shape the kernels do not take and
     * {@link CudaUnavailableException} (one line) without a usable device or when the device's free memory is short
     * of {@link #deviceBytes}.
     */
    public static GpuModelForward open(ForwardModel model, int maxTokens, int blockTokens, int gpuOrdinal) {
        Shape shape = Shape.of(model);
        checkShape(shape, maxTokens, blockTokens);
        CudaDevice device = CudaDevice.open(gpuOrdinal);
        device.makeCurrent();
        long need = deviceBytes(shape, maxTokens, blockTokens);
        long[] free = new long[1];
        long[] total = new long[1];
        Cuda.check(JCudaDriver.cuMemGetInfo(free, total), "cuMemGetInfo");
        if (need > free[0]) {
            throw new CudaUnavailableException(outOfMemory(need, free[0], gpuOrdinal));
        }
        return new GpuModelForward(model, shape, maxTokens, blockTokens, device, need, free[0]);
    }

    private GpuModelForward(ForwardModel model, Shape shape, int maxTokens, int blockTokens, CudaDevice device,
                            long need, long free) {
        this.model = model;
        this.config = shape;
        this.maxTokens = maxTokens;
        this.blockTokens = blockTokens;
        this.device = device;
        this.stream = new CudaStream(device);
        int dim = config.dim();
        int kvDim = config.kvDim();
        int hidden = config.hiddenDim();
        try {
            for (int l = 0; l < config.layers(); l++) {
                ForwardModel.Layer layer = model.layer(l);
                String p = "layer " + l + " ";
                layers.add(new Layer(vector(p + "attention norm", layer.attentionNorm()),
                        matrix(p + "wq", layer.wq()), matrix(p + "wk", layer.wk()), matrix(p + "wv", layer.wv()),
                        matrix(p + "wo", layer.wo()), vector(p + "q bias", layer.qBias()),
                        vector(p + "k bias", layer.kBias()), vector(p + "v bias", layer.vBias()),
                        vector(p + "ffn norm", layer.ffnNorm()), matrix(p + "gate", layer.gate()),
                        matrix(p + "up", layer.up()), matrix(p + "down", layer.down()),
                        floats(p + "keys", (long) maxTokens * kvDim), floats(p + "values", (long) maxTokens * kvDim),
                        floats(p + "queries", (long) maxTokens * dim)));
            }
            finalNorm = vector("final norm", model.finalNorm());
            classifier = matrix("classifier", model.classifier());
            frequencies = vector("rope frequencies", model.ropeFrequencies());
            x = floats("residual stream", (long) blockTokens * dim);
            xb = floats("normalized input", (long) blockTokens * dim);
            att = floats("attention output", (long) blockTokens * dim);
            gate = floats("gate", (long) blockTokens * hidden);
            up = floats("up", (long) blockTokens * hidden);
            positions = track(new DeviceBuffer("positions").ensureInts(blockTokens));
            last = floats("last token", dim);
            logits = floats("logits", config.vocabSize());
        } catch (IllegalStateException e) {
            close();
            if (String.valueOf(e.getMessage()).contains("CUDA_ERROR_OUT_OF_MEMORY")) {
                throw new CudaUnavailableException(outOfMemory(need, free, device.ordinal()) + " (" + e.getMessage()
                        + ")");
            }
            throw e;
        }
    }

    static String outOfMemory(long need, long free, int ordinal) {
        return "GPU " + ordinal + " is out of memory for the model prefill: it needs " + need + " bytes, "
                + free + " bytes are free";
    }

    /** Fails, naming the value, for shapes the kernels do not take or contexts the model does not hold. */
    static void checkShape(Shape config, int maxTokens, int blockTokens) {
        Check.positive(maxTokens, "max_tokens");
        Check.positive(blockTokens, "block_tokens");
        Check.that(maxTokens <= config.contextLength(), "max_tokens must be at most the model's context length "
                + config.contextLength(), "max_tokens", maxTokens);
        Check.that(config.headSize() <= PtxFunction.FLASH_MAX_HEAD, "head size must be at most "
                + PtxFunction.FLASH_MAX_HEAD + " for the GPU prefill", "head_size", config.headSize());
        Check.that((long) maxTokens * config.dim() <= Integer.MAX_VALUE - 8, "max_tokens * dim must fit a Java "
                + "array (the queries copied to the host)", "max_tokens", maxTokens);
    }

    /**
     * Device bytes of a forward of this shape: the weights as float32 (every block's norms, seven matrices and
     * biases; the final norm, the classifier, the RoPE frequencies; not the embedding, looked up on the host), the
     * context (keys, values and queries of every layer for {@code maxTokens} tokens) and one block's activations
     * (residual stream, normalized input, attention output, gate, up, positions) and the logits.
     */
    static long deviceBytes(Shape config, int maxTokens, int blockTokens) {
        long dim = config.dim();
        long kvDim = config.kvDim();
        long hidden = config.hiddenDim();
        long perLayer = 2 * dim + 2 * dim * dim + 2 * kvDim * dim + 3 * hidden * dim + (config.biases() ? dim + 2 * kvDim : 0)
                + (long) maxTokens * (2 * kvDim + dim);
        long floats = config.layers() * perLayer + dim + (long) config.vocabSize() * dim + config.ropeDim() / 2
                + (long) blockTokens * (3 * dim + 2 * hidden + 1) + dim + config.vocabSize();
        return floats * Sizeof.FLOAT;
    }

    @Override
    public synchronized int position() {
        return position;
    }

    /**
     * Runs {@code tokens} through the model after the context so far (positions [position, position + length)) and
     * returns the logits [vocab] of the last one.
     */
    @Override
    public synchronized float[] prefill(int[] tokens) {
        checkOpen();
        checkTokens(tokens);
        device.makeCurrent();
        int dim = config.dim();
        float[] rows = new float[blockTokens * dim];
        int[] blockPositions = new int[blockTokens];
        ForwardModel.Matrix embedding = model.tokenEmbedding();
        int count = 0;
        for (int from = 0; from < tokens.length; from += blockTokens) {
            count = Math.min(blockTokens, tokens.length - from);
            for (int t = 0; t < count; t++) {
                embedding.row(tokens[from + t], rows, t * dim);
                blockPositions[t] = position + t;
            }
            // synchronous copies: the previous block's kernels have finished with x and positions
            stream.synchronize();
            x.upload(rows, count * dim);
            positions.upload(blockPositions, count);
            for (Layer layer : layers) {
                forwardLayer(layer, count);
            }
            position += count;
        }
        // the last token's logits: final norm and classifier on one row
        CudaFunction norm = device.kernel(PtxFunction.RMS_NORM);
        norm.launch(stream, 1, 1, NORM_THREADS, 0, x.atFloat((long) (count - 1) * dim), dim, finalNorm,
                model.normEps(), last);
        linear(last, 1, dim, classifier, config.vocabSize(), null, null, logits);
        stream.synchronize();
        float[] out = new float[config.vocabSize()];
        logits.download(out, out.length);
        return out;
    }

    /** One block of {@code count} tokens at [position, position + count) through one layer. */
    private void forwardLayer(Layer w, int count) {
        int dim = config.dim();
        int kvDim = config.kvDim();
        int hidden = config.hiddenDim();
        int headSize = config.headSize();
        CudaFunction norm = device.kernel(PtxFunction.RMS_NORM);
        CudaFunction rope = device.kernel(PtxFunction.ROPE_ROWS);
        var queries = w.queries.atFloat((long) position * dim);
        var keys = w.keys.atFloat((long) position * kvDim);
        var values = w.values.atFloat((long) position * kvDim);
        // attention sublayer: q, k, v written straight into the context's rows of this block
        norm.launch(stream, count, 1, NORM_THREADS, 0, x, dim, w.attentionNorm, model.normEps(), xb);
        linear(xb, count, dim, w.wq, dim, w.qBias, null, queries);
        linear(xb, count, dim, w.wk, kvDim, w.kBias, null, keys);
        linear(xb, count, dim, w.wv, kvDim, w.vBias, null, values);
        rope.launch(stream, count, 1, ROPE_THREADS, 0, queries, dim, headSize, config.ropeDim() / 2, frequencies,
                positions);
        rope.launch(stream, count, 1, ROPE_THREADS, 0, keys, kvDim, headSize, config.ropeDim() / 2, frequencies,
                positions);
        int shared = (PtxFunction.FLASH_QUERIES * headSize + PtxFunction.FLASH_KEYS * (headSize + 1)
                + PtxFunction.FLASH_QUERIES * PtxFunction.FLASH_KEYS) * Sizeof.FLOAT;
        device.kernel(PtxFunction.ATTEND_CAUSAL).launch(stream, Cuda.blocks(count, PtxFunction.FLASH_QUERIES),
                config.heads(), ATTENTION_THREADS, shared, queries, count, position, w.keys, w.values,
                config.heads(), config.kvHeads(), headSize, (float) (1.0 / Math.sqrt(headSize)), att);
        linear(att, count, dim, w.wo, dim, null, x, x);
        // feed-forward sublayer
        norm.launch(stream, count, 1, NORM_THREADS, 0, x, dim, w.ffnNorm, model.normEps(), xb);
        linear(xb, count, dim, w.gate, hidden, null, null, gate);
        linear(xb, count, dim, w.up, hidden, null, null, up);
        device.kernel(PtxFunction.SILU_GATE).launch(stream, Cuda.blocks((long) count * hidden, GEMM_THREADS), 1,
                GEMM_THREADS, 0, gate, up, (long) count * hidden);
        linear(gate, count, hidden, w.down, dim, null, x, x);
    }

    /** out [tokens, rows] = in [tokens, cols] times w [rows, cols] transposed, + bias, + residual (nulls: none). */
    private void linear(Object in, int tokens, int cols, DeviceBuffer w, int rows, DeviceBuffer bias, Object residual,
                        Object out) {
        device.kernel(PtxFunction.LINEAR).launch(stream, Cuda.blocks(rows, PtxFunction.GEMM_TILE),
                Cuda.blocks(tokens, PtxFunction.GEMM_TILE), GEMM_THREADS, 0, in, tokens, cols, w, rows, bias,
                residual, out);
    }

    /** Rows [0, position) of the keys, values and queries of {@code layer}, each buffer copied once. */
    @Override
    public synchronized LayerRows layerRows(int layer) {
        Layer w = layers(layer);
        checkOpen();
        return new LayerRows(position, download(w.keys, config.kvDim()), download(w.values, config.kvDim()),
                download(w.queries, config.dim()));
    }

    /** Rows [0, position) of KV head {@code kvHead}'s keys of {@code layer}, [position, headSize] (rotated). */
    public synchronized FloatMatrix keys(int layer, int kvHead) {
        return headRows(layers(layer).keys, config.kvDim(), kvHead, 1);
    }

    /** Rows [0, position) of KV head {@code kvHead}'s values of {@code layer}, [position, headSize]. */
    public synchronized FloatMatrix values(int layer, int kvHead) {
        return headRows(layers(layer).values, config.kvDim(), kvHead, 1);
    }

    /** The keys and values of one KV head as the CPU session caches them. */
    public synchronized KeyValueCache cache(int layer, int kvHead) {
        return KeyValueCache.of(keys(layer, kvHead), values(layer, kvHead));
    }

    /**
     * The rotated queries of the query heads that share KV head {@code kvHead}, [position * group, headSize], in
     * token order, then head order within a token ({@code Session.prefillQueries}' layout).
     */
    public synchronized FloatMatrix prefillQueries(int layer, int kvHead) {
        return headRows(layers(layer).queries, config.dim(), kvHead, config.groupSize());
    }

    /** Per token, the {@code group} consecutive heads from {@code kvHead * group} of rows of {@code width} floats. */
    private FloatMatrix headRows(DeviceBuffer buffer, int width, int kvHead, int group) {
        checkOpen();
        Check.that(kvHead >= 0 && kvHead < config.kvHeads(), "kv head must be in [0, " + config.kvHeads() + ")",
                "kv_head", kvHead);
        float[] all = download(buffer, width);
        int headSize = config.headSize();
        int span = group * headSize;
        float[] out = new float[position * span];
        for (int t = 0; t < position; t++) {
            System.arraycopy(all, t * width + kvHead * span, out, t * span, span);
        }
        return new FloatMatrix(position * group, headSize, out);
    }

    /** Rows [0, position) of a buffer of rows of {@code width} floats, after the stream's work. */
    private float[] download(DeviceBuffer buffer, int width) {
        device.makeCurrent();
        stream.synchronize();
        float[] all = new float[position * width];
        buffer.download(all, all.length);
        return all;
    }

    private Layer layers(int layer) {
        Check.that(layer >= 0 && layer < layers.size(), "layer must be in [0, " + layers.size() + ")", "layer",
                layer);
        return layers.get(layer);
    }

    private void checkTokens(int[] tokens) {
        Check.that(tokens.length > 0, "a prefill needs at least one token", "tokens", 0);
        for (int token : tokens) {
            Check.that(token >= 0 && token < config.vocabSize(), "token ids must be in [0, " + config.vocabSize()
                    + ")", "token", token);
        }
        long after = (long) position + tokens.length;
        Check.that(after <= maxTokens, "the context must be at most the GPU prefill's max_tokens " + maxTokens,
                "tokens", after);
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("the GPU model forward is closed");
        }
    }

    private DeviceBuffer track(DeviceBuffer buffer) {
        buffers.add(buffer);
        return buffer;
    }

    private DeviceBuffer floats(String name, long count) {
        return track(new DeviceBuffer(name).ensureFloats(count));
    }

    /** A vector uploaded as it is; null for an absent bias. */
    private DeviceBuffer vector(String name, float[] values) {
        if (values == null) {
            return null;
        }
        return track(new DeviceBuffer(name).upload(values, values.length));
    }

    /** The matrix decoded row by row to float32 and uploaded in pieces of at most {@value #UPLOAD_FLOATS} floats. */
    private DeviceBuffer matrix(String name, ForwardModel.Matrix m) {
        int cols = m.cols();
        DeviceBuffer buffer = floats(name, (long) m.rows() * cols);
        int rowsPerPiece = Math.max(1, Math.min(m.rows(), UPLOAD_FLOATS / cols));
        float[] piece = new float[rowsPerPiece * cols];
        for (int first = 0; first < m.rows(); first += rowsPerPiece) {
            int count = Math.min(rowsPerPiece, m.rows() - first);
            for (int r = 0; r < count; r++) {
                m.row(first + r, piece, r * cols);
            }
            Cuda.check(JCudaDriver.cuMemcpyHtoD(buffer.atFloat((long) first * cols), Pointer.to(piece),
                    (long) count * cols * Sizeof.FLOAT), "cuMemcpyHtoD(" + name + ")");
        }
        return buffer;
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        device.makeCurrent();
        for (DeviceBuffer buffer : buffers) {
            buffer.close();
        }
        stream.close();
    }
}
