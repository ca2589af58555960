package io.csattention.model;

import io.csattention.core.KeyValueCache;

import io.csattention.kernel.Kernels;
import io.csattention.kernel.VectorKernels;

import java.util.Optional;
import java.util.stream.IntStream;

/**
 * A Llama-family model: its shape, its weights, an optional tokenizer, and the pieces of the forward pass that do
 * not depend on a sequence (embedding, RMSNorm, RoPE, the matrix products, SwiGLU, the classifier). A
 * {@link Session} runs the forward pass of one sequence with its KV cache.
 *
 * <p>RoPE uses the interleaved-pairs convention of llama2.c: dimensions (2i, 2i+1) of each head rotate together by
 * {@code pos * base^(-2i / ropeDim)}. GGUF {@code llama} files use the same convention: llama.cpp's converters
 * permute the Q and K rows of Hugging Face checkpoints (whose RoPE rotates halves, (i, i + d/2)) into interleaved
 * order when they write the file (ggml's {@code LLAMA_ROPE_TYPE_NORM}), so one RoPE serves both formats. GGUF
 * {@code qwen2} files keep the halves order (ggml's NEOX); {@link GgufModel} reorders their Q and K rows at load.
 */
public final class LlamaModel {

    /** Below this many multiply-adds a matrix product runs on the calling thread. */
    private static final long PARALLEL_WORK = 1 << 17;
    /** The smallest number of weight rows a thread takes in a matrix product. */
    private static final int ROW_TILE = 8;

    private final LlamaConfig config;
    private final LlamaWeights weights;
    private final Tokenizer tokenizer;
    private final VectorKernels kernels;
    /** The rotation frequency of each pair of a head's dimensions, [ropeDim / 2]. */
    private final float[] ropeFrequencies;
    /** Token ids generation stops at (end of sequence, end of turn), ascending. */
    private final int[] stopTokens;
    /** The file's {@code tokenizer.chat_template}, or null. */
    private final String chatTemplate;
    private final KeyValueCache.Precision kvPrecision;

    /** The rotation frequency of each pair of a head's dimensions, [ropeDim / 2] (a copy). */
    public float[] ropeFrequencies() {
        return ropeFrequencies.clone();
    }

    /** A model that stops generation at no token (llama2.c checkpoints carry no vocabulary ids). */
    public LlamaModel(LlamaConfig config, LlamaWeights weights, Tokenizer tokenizer) {
        this(config, weights, tokenizer, new int[0]);
    }

    public LlamaModel(LlamaConfig config, LlamaWeights weights, Tokenizer tokenizer, int[] stopTokens) {
        this(config, weights, tokenizer, stopTokens, null);
    }

    /** A model with its chat template ({@code tokenizer.chat_template}, null: none). */
    public LlamaModel(LlamaConfig config, LlamaWeights weights, Tokenizer tokenizer, int[] stopTokens,
                      String chatTemplate) {
        this(config, weights, tokenizer, stopTokens, chatTemplate, KeyValueCache.Precision.DEFAULT);
    }

    private LlamaModel(LlamaConfig config, LlamaWeights weights, Tokenizer tokenizer, int[] stopTokens,
                       String chatTemplate, KeyValueCache.Precision kvPrecision) {
        this.chatTemplate = chatTemplate;
        this.kvPrecision = java.util.Objects.requireNonNull(kvPrecision, "kvPrecision");
        this.config = config;
        this.weights = weights;
        this.tokenizer = tokenizer;
        this.stopTokens = stopTokens.clone();
        this.kernels = Kernels.preferred();
        this.ropeFrequencies = new float[config.ropeDim() / 2];
        float[] divisors = weights.ropeDivisors();
        for (int i = 0; i < ropeFrequencies.length; i++) {
            double divisor = divisors == null ? 1 : divisors[i];
            ropeFrequencies[i] = (float) (1.0 / Math.pow(config.ropeBase(), (2.0 * i) / config.ropeDim()) / divisor);
        }
    }

    public LlamaConfig config() {
        return config;
    }

    public LlamaWeights weights() {
        return weights;
    }

    /**
     * The first non-finite weight of the model, as {@code tensor[row,col]=value} (norms and RoPE divisors by their
     * GGUF names), or empty. Called when a forward pass produced non-finite logits, to name the tensor.
     */
    public Optional<String> firstNonFiniteWeight() {
        java.util.List<java.util.function.Supplier<Optional<String>>> tensors = new java.util.ArrayList<>();
        tensors.add(weights.tokenEmbedding()::firstNonFinite);
        for (int l = 0; l < weights.layers().size(); l++) {
            LlamaWeights.Layer layer = weights.layers().get(l);
            String prefix = "blk." + l + ".";
            tensors.add(() -> firstNonFinite(prefix + "attn_norm.weight", layer.attentionNorm()));
            for (WeightMatrix m : new WeightMatrix[] {layer.wq(), layer.wk(), layer.wv(), layer.wo()}) {
                tensors.add(m::firstNonFinite);
            }
            tensors.add(() -> firstNonFinite(prefix + "ffn_norm.weight", layer.ffnNorm()));
            for (WeightMatrix m : new WeightMatrix[] {layer.gate(), layer.down(), layer.up()}) {
                tensors.add(m::firstNonFinite);
            }
        }
        tensors.add(() -> firstNonFinite("output_norm.weight", weights.finalNorm()));
        if (weights.classifier() != weights.tokenEmbedding()) {
            tensors.add(weights.classifier()::firstNonFinite);
        }
        if (weights.ropeDivisors() != null) {
            tensors.add(() -> firstNonFinite("rope_freqs.weight", weights.ropeDivisors()));
        }
        for (var tensor : tensors) {
            Optional<String> bad = tensor.get();
            if (bad.isPresent()) {
                return bad;
            }
        }
        return Optional.empty();
    }

    private static Optional<String> firstNonFinite(String name, float[] values) {
        for (int i = 0; i < values.length; i++) {
            if (!Float.isFinite(values[i])) {
                return Optional.of(name + "[" + i + "]=" + values[i]);
            }
        }
        return Optional.empty();
    }

    public Optional<Tokenizer> tokenizer() {
        return Optional.ofNullable(tokenizer);
    }

    public LlamaModel withTokenizer(Tokenizer t) {
        return new LlamaModel(config, weights, t, stopTokens, chatTemplate, kvPrecision);
    }

    /** The same model whose new sessions store K and V in {@code precision} (the weights are shared). */
    public LlamaModel withKvPrecision(KeyValueCache.Precision precision) {
        return new LlamaModel(config, weights, tokenizer, stopTokens, chatTemplate, precision);
    }

    /** How {@link #newSession()} stores K and V: {@link KeyValueCache.Precision#DEFAULT} unless chosen. */
    public KeyValueCache.Precision kvPrecision() {
        return kvPrecision;
    }

    /** The file's {@code tokenizer.chat_template} (Jinja source), when it has one. */
    public Optional<String> chatTemplate() {
        return Optional.ofNullable(chatTemplate);
    }

    /**
     * The prompt ids of one user {@code question} formatted with the model's chat template ({@link ChatTemplate}),
     * the assistant's turn opened: the template's control pieces become their ids (byte-level BPE), and the
     * tokenizer adds BOS as it does for any text. SentencePiece vocabularies read the markers as text (Llama 2 and
     * Mistral v0.1/v0.2 do); one that holds {@code [INST]} as a piece of its own (Mistral v0.3's control token) is
     * refused.
     */
    public int[] chatPrompt(String question) {
        Tokenizer t = tokenizer().orElseThrow(() -> new IllegalArgumentException(
                "chat formatting needs a tokenizer; tokenizer=none"));
        String text = ChatTemplate.recognize(chatTemplate).render(question);
        if (t.kind() == Tokenizer.Kind.BYTE_LEVEL_BPE) {
            return t.encodeWithSpecials(text);
        }
        if (t.hasPiece("[INST]")) {
            throw new IllegalArgumentException("chat templates whose markers are pieces of their own need a "
                    + "byte-level BPE vocabulary; piece=[INST]");
        }
        return t.encode(text);
    }

    /** The token ids generation stops at by default (end of sequence and end of turn), ascending; a copy. */
    public int[] stopTokens() {
        return stopTokens.clone();
    }

    public VectorKernels kernels() {
        return kernels;
    }

    /** A new sequence with an empty KV cache in this model's {@link #kvPrecision()}. */
    public Session newSession() {
        return newSession(kvPrecision);
    }

    /** A new sequence with an empty KV cache whose keys and values are stored in {@code kvPrecision}. */
    public Session newSession(KeyValueCache.Precision kvPrecision) {
        return new Session(this, kvPrecision);
    }

    /** Fails unless {@code token} is a token id of this model. */
    public void checkToken(int token) {
        if (token < 0 || token >= config.vocabSize()) {
            throw new IllegalArgumentException("token ids must be in [0, " + config.vocabSize() + "); token="
                    + token);
        }
    }

    /** Fails when a sequence of {@code tokens} tokens would exceed the model's context length. */
    public void checkLength(long tokens) {
        if (tokens > config.contextLength()) {
            throw new IllegalArgumentException("context must be at most the model's context length "
                    + config.contextLength() + " tokens; tokens=" + tokens);
        }
    }

    // ---- the sequence-independent pieces of the forward pass, over blocks of tokens ----

    /** x [tokens, dim] = the embedding rows of the tokens. */
    void embed(int[] tokens, int from, int count, float[] x) {
        float[] row = new float[config.dim()];
        for (int t = 0; t < count; t++) {
            weights.tokenEmbedding().row(tokens[from + t], row);
            System.arraycopy(row, 0, x, t * config.dim(), config.dim());
        }
    }

    /** out [tokens, n] = RMSNorm(x [tokens, n]) * weight [n]. */
    void rmsNorm(float[] x, float[] weight, int tokens, float[] out) {
        int n = weight.length;
        for (int t = 0; t < tokens; t++) {
            int base = t * n;
            float ss = kernels.dot(x, base, x, base, n) / n + config.normEps();
            float scale = (float) (1.0 / Math.sqrt(ss));
            for (int j = 0; j < n; j++) {
                out[base + j] = weight[j] * (scale * x[base + j]);
            }
        }
    }

    /**
     * out [tokens, w.rows] = x [tokens, w.cols] times w transposed. Each weight row is prepared once (its bytes read
     * and, for quantized types, unpacked to int8 code blocks with a scale and offset each, {@link WeightMatrix#prepare})
     * and dotted with every token of the block ({@link WeightMatrix#dotPreparedTokens}): one token multiplies the
     * codes in vector registers without forming the dequantized row, four or more widen the codes once and share each
     * loaded vector among four tokens; row ranges are split across threads when the product is large. An output
     * element is one dot product computed by one thread in one fixed order, the same whatever the number of tokens
     * (prefill, one decode step, a batch of sequences) or of threads, so batched and single-sequence decoding give
     * the same bits.
     */
    void matmul(WeightMatrix w, float[] x, int tokens, float[] out) {
        int rows = w.rows();
        int cols = w.cols();
        long work = (long) rows * cols * tokens;
        int chunks = work < PARALLEL_WORK ? 1
                : Math.min((rows + ROW_TILE - 1) / ROW_TILE, 4 * Runtime.getRuntime().availableProcessors());
        float[] blockSums = w.blockSums(x, tokens);
        float[] input = w.input(x, tokens, kernels);
        IntStream range = IntStream.range(0, chunks);
        (chunks > 1 ? range.parallel() : range).forEach(chunk -> {
            WeightMatrix.Scratch scratch = new WeightMatrix.Scratch();
            int to = (int) ((long) rows * (chunk + 1) / chunks);
            int r = (int) ((long) rows * chunk / chunks);
            if (tokens >= 4) {
                // two rows at a time: each loaded vector of x serves both (the same bits as one row at a time)
                WeightMatrix.Scratch second = new WeightMatrix.Scratch();
                for (; r + 2 <= to; r += 2) {
                    w.prepare(r, scratch, kernels);
                    w.prepare(r + 1, second, kernels);
                    w.dotPreparedTokensPair(scratch, second, input, tokens, blockSums, out, r, r + 1, rows, kernels);
                }
            }
            for (; r < to; r++) {
                w.prepare(r, scratch, kernels);
                w.dotPreparedTokens(scratch, input, tokens, blockSums, out, r, rows, kernels);
            }
        });
    }

    /**
     * Rotates every head of x [tokens, width] (width = dim for queries, kvDim for keys), row t by
     * {@code positions[t]}.
     */
    void rope(float[] x, int width, int[] positions) {
        int headSize = config.headSize();
        for (int t = 0; t < positions.length; t++) {
            int pos = positions[t];
            for (int head = 0; head < width / headSize; head++) {
                int base = t * width + head * headSize;
                for (int pair = 0; pair < ropeFrequencies.length; pair++) {
                    float angle = pos * ropeFrequencies[pair];
                    float cos = (float) Math.cos(angle);
                    float sin = (float) Math.sin(angle);
                    int i = base + 2 * pair;
                    float v0 = x[i];
                    float v1 = x[i + 1];
                    x[i] = v0 * cos - v1 * sin;
                    x[i + 1] = v0 * sin + v1 * cos;
                }
            }
        }
    }

    /** gate [tokens, hidden] = silu(gate) * up, in place. */
    static void swiGlu(float[] gate, float[] up, int length) {
        for (int i = 0; i < length; i++) {
            float g = gate[i];
            gate[i] = g / (1f + (float) Math.exp(-g)) * up[i];
        }
    }

    /** logits [rows, vocab] of normalized hidden states x [rows, dim]. */
    float[] classify(float[] x, int rows) {
        float[] logits = new float[rows * config.vocabSize()];
        matmul(weights.classifier(), x, rows, logits);
        return logits;
    }
}
