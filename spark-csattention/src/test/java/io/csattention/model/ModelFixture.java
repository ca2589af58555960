package io.csattention.model;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * GGUF files of the structure of published models, with seeded random weights, small enough that a model test runs
 * in seconds: {@link #llama3()} is Llama 3.1-shaped (GQA 4:1, head size 64, RoPE base 500000 with Llama 3.1's
 * {@code rope_freqs.weight}, a truncated real Llama 3 vocabulary with its merges and control tokens), {@link #qwen2()}
 * Qwen2-shaped (Q, K and V biases, RoPE base 1000000, NEOX rotation, a truncated Qwen vocabulary, {@code qwen2}
 * pre-tokenizer). Matrix widths are multiples of 256, so the K-quant {@link Mix}es apply to every matrix.
 *
 * <p>Weights are Gaussian with standard deviation 1/sqrt(cols) (activations of order 1), norms 1 + N(0, 0.1^2),
 * biases N(0, 0.5^2); the seed is printed by {@link #write}. Public for the Spark tests, which write fixtures to
 * files that executors read.
 */
public final class ModelFixture {

    /** The tensor types of a file, as llama.cpp's quantization presets assign them to a 2-layer model. */
    public enum Mix {
        F32(TensorType.F32, TensorType.F32, TensorType.F32),
        Q8_0(TensorType.Q8_0, TensorType.Q8_0, TensorType.Q8_0),
        /** Q4_K, with attn_v, ffn_down (use_more_bits: both layers of two) and output in Q6_K. */
        Q4_K_M(TensorType.Q4_K, TensorType.Q6_K, TensorType.Q6_K),
        /** Q5_K, with attn_v, ffn_down and output in Q6_K. */
        Q5_K_M(TensorType.Q5_K, TensorType.Q6_K, TensorType.Q6_K);

        final TensorType base;
        final TensorType moreBits;
        final TensorType output;

        Mix(TensorType base, TensorType moreBits, TensorType output) {
            this.base = base;
            this.moreBits = moreBits;
            this.output = output;
        }
    }

    /** Llama 3 8B Instruct's {@code tokenizer.chat_template}. */
    static final String LLAMA3_TEMPLATE = "{% set loop_messages = messages %}{% for message in loop_messages %}"
            + "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ "
            + "message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + "
            + "content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
            + "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";
    /** Qwen2 Instruct's {@code tokenizer.chat_template}. */
    static final String QWEN2_TEMPLATE = "{% for message in messages %}{% if loop.first and messages[0]['role'] != "
            + "'system' %}{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
            + "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
            + "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    private final String architecture;
    private final String family;
    private final String pre;
    private final float ropeBase;
    private final String chatTemplate;
    private int dim = 256;
    private int hidden = 768;
    private int layers = 2;
    private int heads = 4;
    private int kvHeads = 1;
    private int normalTokens = 3840;
    private int contextLength = 4096;
    private Mix mix = Mix.Q8_0;
    private boolean tied;
    private long seed = 20261202L;
    private int[] swappedOutputRows;

    private ModelFixture(String architecture, String family, String pre, float ropeBase, String chatTemplate) {
        this.architecture = architecture;
        this.family = family;
        this.pre = pre;
        this.ropeBase = ropeBase;
        this.chatTemplate = chatTemplate;
    }

    /** Llama 3.1-shaped: architecture llama, Llama 3 vocabulary, {@code rope_freqs.weight}, base 500000. */
    public static ModelFixture llama3() {
        return new ModelFixture("llama", "llama3", "llama-bpe", 500000f, LLAMA3_TEMPLATE);
    }

    /** Qwen2-shaped: architecture qwen2, QKV biases, the Qwen vocabulary, base 1000000. */
    public static ModelFixture qwen2() {
        return new ModelFixture("qwen2", "qwen3", "qwen2", 1000000f, QWEN2_TEMPLATE);
    }

    public ModelFixture mix(Mix m) {
        this.mix = m;
        return this;
    }

    /** No {@code output.weight}: the classifier is the token embedding (Llama 3.2, small Qwen2). */
    ModelFixture tied(boolean t) {
        this.tied = t;
        return this;
    }

    public ModelFixture seed(long s) {
        this.seed = s;
        return this;
    }

    ModelFixture shape(int modelDim, int hiddenDim, int blocks, int queryHeads, int keyValueHeads) {
        this.dim = modelDim;
        this.hidden = hiddenDim;
        this.layers = blocks;
        this.heads = queryHeads;
        this.kvHeads = keyValueHeads;
        return this;
    }

    /** Swaps two rows of {@code output.weight} after drawing it (untied only): their logits trade places. */
    public ModelFixture swapOutputRows(int a, int b) {
        this.swappedOutputRows = new int[] {a, b};
        return this;
    }

    /** The fixture's vocabulary: the family's first normal tokens and all its control and user-defined ones. */
    Vocabulary vocabulary() throws IOException {
        return Vocabulary.read(family).truncated(normalTokens);
    }

    /** The file's contents, to add or override metadata before writing. */
    GgufWriter writer() throws IOException {
        Vocabulary v = vocabulary();
        int vocab = v.tokens().size();
        String p = architecture + ".";
        GgufWriter w = new GgufWriter()
                .put("general.architecture", architecture)
                .put("general.name", family + "-fixture-" + mix)
                .put(p + "context_length", contextLength)
                .put(p + "embedding_length", dim)
                .put(p + "feed_forward_length", hidden)
                .put(p + "block_count", layers)
                .put(p + "attention.head_count", heads)
                .put(p + "attention.head_count_kv", kvHeads)
                .put(p + "rope.dimension_count", dim / heads)
                .put(p + "rope.freq_base", ropeBase)
                .put(p + "attention.layer_norm_rms_epsilon", 1e-5f)
                .put(p + "vocab_size", vocab)
                .put("tokenizer.ggml.model", "gpt2")
                .put("tokenizer.ggml.pre", pre)
                .put("tokenizer.ggml.tokens", v.tokens())
                .put("tokenizer.ggml.token_type", v.types())
                .put("tokenizer.ggml.merges", v.merges())
                .put("tokenizer.chat_template", chatTemplate);
        if (architecture.equals("llama")) {
            w.put("tokenizer.ggml.bos_token_id", v.id("<|begin_of_text|>"))
                    .put("tokenizer.ggml.eos_token_id", v.id("<|eot_id|>"));
        } else {
            w.put("tokenizer.ggml.bos_token_id", v.id("<|endoftext|>"))
                    .put("tokenizer.ggml.eos_token_id", v.id("<|im_end|>"))
                    .put("tokenizer.ggml.add_bos_token", false);
        }
        Random random = new Random(seed);
        matrix(w, "token_embd.weight", mix.base, vocab, dim, random, null);
        if (architecture.equals("llama")) {
            float[] divisors = llama31RopeDivisors(dim / heads, ropeBase);
            w.tensor("rope_freqs.weight", TensorType.F32, divisors, 1, divisors.length);
        }
        int kvDim = kvHeads * (dim / heads);
        for (int l = 0; l < layers; l++) {
            String b = "blk." + l + ".";
            w.tensor(b + "attn_norm.weight", TensorType.F32, norm(dim, random), 1, dim);
            matrix(w, b + "attn_q.weight", mix.base, dim, dim, random, null);
            matrix(w, b + "attn_k.weight", mix.base, kvDim, dim, random, null);
            matrix(w, b + "attn_v.weight", mix.moreBits, kvDim, dim, random, null);
            if (architecture.equals("qwen2")) {
                w.tensor(b + "attn_q.bias", TensorType.F32, gaussian(dim, 0.5, random), 1, dim);
                w.tensor(b + "attn_k.bias", TensorType.F32, gaussian(kvDim, 0.5, random), 1, kvDim);
                w.tensor(b + "attn_v.bias", TensorType.F32, gaussian(kvDim, 0.5, random), 1, kvDim);
            }
            matrix(w, b + "attn_output.weight", mix.base, dim, dim, random, null);
            w.tensor(b + "ffn_norm.weight", TensorType.F32, norm(dim, random), 1, dim);
            matrix(w, b + "ffn_gate.weight", mix.base, hidden, dim, random, null);
            matrix(w, b + "ffn_down.weight", mix.moreBits, dim, hidden, random, null);
            matrix(w, b + "ffn_up.weight", mix.base, hidden, dim, random, null);
        }
        w.tensor("output_norm.weight", TensorType.F32, norm(dim, random), 1, dim);
        if (!tied) {
            matrix(w, "output.weight", mix.output, vocab, dim, random, swappedOutputRows);
        } else if (swappedOutputRows != null) {
            throw new IllegalStateException("swapped output rows need an untied output.weight");
        }
        return w;
    }

    /** Writes the fixture to {@code file}, printing its seed and size. */
    public Path write(Path file) throws IOException {
        writer().write(file);
        System.out.printf("model fixture %s %s%s seed=%d: %d bytes%n", architecture, mix, tied ? " tied" : "", seed,
                java.nio.file.Files.size(file));
        return file;
    }

    private static void matrix(GgufWriter w, String name, TensorType type, int rows, int cols, Random random,
                               int[] swap) {
        float[] values = gaussian(rows * cols, 1 / Math.sqrt(cols), random);
        if (swap != null) {
            for (int j = 0; j < cols; j++) {
                float t = values[swap[0] * cols + j];
                values[swap[0] * cols + j] = values[swap[1] * cols + j];
                values[swap[1] * cols + j] = t;
            }
        }
        w.tensor(name, type, values, rows, cols);
    }

    private static float[] gaussian(int n, double std, Random random) {
        float[] out = new float[n];
        for (int i = 0; i < n; i++) {
            out[i] = (float) (random.nextGaussian() * std);
        }
        return out;
    }

    private static float[] norm(int n, Random random) {
        float[] out = gaussian(n, 0.1, random);
        for (int i = 0; i < n; i++) {
            out[i] += 1;
        }
        return out;
    }

    /**
     * Llama 3.1's RoPE frequency divisors as llama.cpp's converter writes {@code rope_freqs.weight}: factor 8,
     * low/high frequency factors 1 and 4, original context 8192.
     */
    static float[] llama31RopeDivisors(int headSize, double base) {
        double factor = 8;
        double lowFactor = 1;
        double highFactor = 4;
        double original = 8192;
        List<Float> out = new ArrayList<>();
        for (int i = 0; i < headSize; i += 2) {
            double freq = 1 / Math.pow(base, (double) i / headSize);
            double wavelength = 2 * Math.PI / freq;
            if (wavelength < original / highFactor) {
                out.add(1f);
            } else if (wavelength > original / lowFactor) {
                out.add((float) factor);
            } else {
                double smooth = (original / wavelength - lowFactor) / (highFactor - lowFactor);
                out.add((float) (1 / ((1 - smooth) / factor + smooth)));
            }
        }
        float[] divisors = new float[out.size()];
        for (int i = 0; i < divisors.length; i++) {
            divisors[i] = out.get(i);
        }
        return divisors;
    }
}
