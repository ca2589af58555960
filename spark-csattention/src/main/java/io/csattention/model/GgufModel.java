package io.csattention.model;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Builds a {@link LlamaModel} from a GGUF file of architecture {@code llama} (Llama 2, 3, 3.1, 3.2, Mistral) or
 * {@code qwen2}: dimensions from the {@code <architecture>.*} metadata, tensors by llama.cpp's names
 * ({@code token_embd}, {@code blk.N.attn_q} ..., {@code output_norm}, {@code output}, tied to the embedding when
 * absent), the vocabulary from {@code tokenizer.ggml.*}. RoPE frequency scaling: Llama 3.1's per-pair divisors
 * ({@code rope_freqs.weight}) and linear scaling ({@code <architecture>.rope.scaling.type = linear},
 * {@code .factor}) are applied; other scaling types (YaRN) are refused.
 *
 * <p>{@code qwen2}: Q, K and V biases ({@code blk.N.attn_q.bias} ...) are added after the projections, and RoPE is
 * ggml's NEOX style (pairs (i, i + ropeDim / 2), on the Hugging Face row order that llama.cpp's converter keeps for
 * this architecture). The loader reorders the rows of attn_q and attn_k, and their biases, in every head so that pair
 * i sits at (2i, 2i + 1): the forward pass then rotates interleaved pairs as for {@code llama}, and since queries and
 * keys are reordered alike, every attention score, and so the output, is unchanged.
 */
public final class GgufModel {

    /** The values of {@code general.architecture} this runtime loads. */
    public static final java.util.List<String> ARCHITECTURES = java.util.List.of("llama", "qwen2");

    private GgufModel() {
    }

    public static LlamaModel load(Path file) throws IOException {
        GgufFile gguf = GgufFile.read(file);
        String architecture = gguf.string("general.architecture");
        if (!ARCHITECTURES.contains(architecture)) {
            throw new IllegalArgumentException("architecture must be one of " + String.join(", ", ARCHITECTURES)
                    + "; general.architecture=" + GgufFile.show(architecture));
        }
        boolean neox = architecture.equals("qwen2");
        String p = architecture + ".";
        int dim = positive(gguf, p + "embedding_length", Long.MIN_VALUE);
        int heads = positive(gguf, p + "attention.head_count", Long.MIN_VALUE);
        int kvHeads = positive(gguf, p + "attention.head_count_kv", heads);
        if (dim % heads != 0) {
            throw new IOException("GGUF metadata " + p + "embedding_length must be a multiple of " + p
                    + "attention.head_count=" + heads + "; " + p + "embedding_length=" + dim + " (model=" + file + ")");
        }
        if (heads % kvHeads != 0) {
            throw new IOException("GGUF metadata " + p + "attention.head_count must be a multiple of " + p
                    + "attention.head_count_kv=" + kvHeads + "; " + p + "attention.head_count=" + heads + " (model="
                    + file + ")");
        }
        int ropeDim = positive(gguf, p + "rope.dimension_count", dim / heads);
        if (ropeDim % 2 != 0 || ropeDim > dim / heads) {
            throw new IOException("GGUF metadata " + p + "rope.dimension_count must be even and at most the head size "
                    + dim / heads + "; " + p + "rope.dimension_count=" + ropeDim + " (model=" + file + ")");
        }
        double ropeBase = gguf.real(p + "rope.freq_base", 10000.0);
        if (!(ropeBase > 1) || Double.isInfinite(ropeBase)) {
            throw new IOException("GGUF metadata " + p + "rope.freq_base must be finite and > 1; " + p
                    + "rope.freq_base=" + ropeBase + " (model=" + file + ")");
        }
        double eps = gguf.real(p + "attention.layer_norm_rms_epsilon", 1e-5);
        if (!(eps > 0) || Double.isInfinite(eps)) {
            throw new IOException("GGUF metadata " + p + "attention.layer_norm_rms_epsilon must be finite and > 0; "
                    + p + "attention.layer_norm_rms_epsilon=" + eps + " (model=" + file + ")");
        }
        GgufFile.TensorInfo embedding = gguf.tensors().get("token_embd.weight");
        if (embedding == null) {
            throw new IOException("GGUF file must contain tensor token_embd.weight; model=" + file);
        }
        long vocab = embedding.elements() / embedding.dims()[0];
        if (vocab > Integer.MAX_VALUE) {
            throw new IOException("GGUF tensor token_embd.weight must have at most 2^31-1 rows (the vocabulary); "
                    + "rows=" + vocab + " (model=" + file + ")");
        }
        LlamaConfig config = new LlamaConfig(dim,
                positive(gguf, p + "feed_forward_length", Long.MIN_VALUE),
                positive(gguf, p + "block_count", Long.MIN_VALUE),
                heads,
                kvHeads,
                (int) vocab,
                positive(gguf, p + "context_length", Long.MIN_VALUE),
                (float) ropeBase,
                ropeDim,
                (float) eps);
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            WeightMatrix tokenEmbedding = gguf.matrix(channel, "token_embd.weight");
            List<LlamaWeights.Layer> layers = new ArrayList<>();
            int[] queryOrder = neox ? interleavedOrder(config.heads(), config) : null;
            int[] keyOrder = neox ? interleavedOrder(config.kvHeads(), config) : null;
            for (int l = 0; l < config.layers(); l++) {
                String b = "blk." + l + ".";
                layers.add(new LlamaWeights.Layer(
                        vector(gguf, channel, b + "attn_norm.weight", dim),
                        reordered(shaped(gguf, channel, b + "attn_q.weight", dim, dim), queryOrder),
                        reordered(shaped(gguf, channel, b + "attn_k.weight", config.kvDim(), dim), keyOrder),
                        shaped(gguf, channel, b + "attn_v.weight", config.kvDim(), dim),
                        shaped(gguf, channel, b + "attn_output.weight", dim, dim),
                        vector(gguf, channel, b + "ffn_norm.weight", dim),
                        shaped(gguf, channel, b + "ffn_gate.weight", config.hiddenDim(), dim),
                        shaped(gguf, channel, b + "ffn_down.weight", dim, config.hiddenDim()),
                        shaped(gguf, channel, b + "ffn_up.weight", config.hiddenDim(), dim),
                        reordered(bias(gguf, channel, b + "attn_q.bias", dim), queryOrder),
                        reordered(bias(gguf, channel, b + "attn_k.bias", config.kvDim()), keyOrder),
                        bias(gguf, channel, b + "attn_v.bias", config.kvDim())));
            }
            float[] finalNorm = vector(gguf, channel, "output_norm.weight", dim);
            WeightMatrix classifier = gguf.tensors().containsKey("output.weight")
                    ? shaped(gguf, channel, "output.weight", config.vocabSize(), dim) : tokenEmbedding;
            return new LlamaModel(config, new LlamaWeights(tokenEmbedding, layers, finalNorm, classifier,
                    ropeDivisors(gguf, channel, config, p)), tokenizer(gguf), stopTokens(gguf, config.vocabSize()),
                    gguf.metadata().get("tokenizer.chat_template") instanceof String template ? template : null);
        }
    }

    /**
     * The row order that moves NEOX pairs (i, i + ropeDim / 2) of each of {@code heads} heads to interleaved
     * (2i, 2i + 1): row h * headSize + 2i reads row h * headSize + i, row h * headSize + 2i + 1 reads row
     * h * headSize + i + ropeDim / 2; dimensions past ropeDim stay.
     */
    static int[] interleavedOrder(int heads, LlamaConfig config) {
        int headSize = config.headSize();
        int half = config.ropeDim() / 2;
        int[] order = new int[heads * headSize];
        for (int h = 0; h < heads; h++) {
            int base = h * headSize;
            for (int i = 0; i < headSize; i++) {
                order[base + i] = base + i;
            }
            for (int i = 0; i < half; i++) {
                order[base + 2 * i] = base + i;
                order[base + 2 * i + 1] = base + i + half;
            }
        }
        return order;
    }

    private static WeightMatrix reordered(WeightMatrix m, int[] order) {
        return order == null ? m : m.withRowOrder(order);
    }

    private static float[] reordered(float[] v, int[] order) {
        if (v == null || order == null) {
            return v;
        }
        float[] out = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            out[i] = v[order[i]];
        }
        return out;
    }

    /** The bias vector {@code name} of {@code length}, or null when the file has none. */
    private static float[] bias(GgufFile gguf, FileChannel channel, String name, int length) throws IOException {
        return gguf.tensors().containsKey(name) ? vector(gguf, channel, name, length) : null;
    }

    /** Control pieces that end a turn in the families this runtime reads, stopped at when the vocabulary has them. */
    private static final java.util.Set<String> END_OF_TURN_PIECES = java.util.Set.of("<|eot_id|>", "<|eom_id|>",
            "<|end_of_text|>", "<|im_end|>", "<|endoftext|>", "<|end|>", "</s>");

    /**
     * The ids generation stops at: {@code tokenizer.ggml.eos_token_id}, {@code eot_token_id} and
     * {@code eom_token_id} when the file gives them, and the vocabulary's end-of-turn control pieces (as llama.cpp's
     * end-of-generation set), each inside the vocabulary.
     */
    static int[] stopTokens(GgufFile gguf, int vocabSize) throws IOException {
        java.util.TreeSet<Integer> stops = new java.util.TreeSet<>();
        for (String key : new String[] {"eos_token_id", "eot_token_id", "eom_token_id"}) {
            long id = gguf.integer("tokenizer.ggml." + key, -1);
            if (id >= 0 && id < vocabSize) {
                stops.add((int) id);
            }
        }
        if (gguf.metadata().get("tokenizer.ggml.tokens") instanceof List<?> list) {
            for (int i = 0; i < Math.min(list.size(), vocabSize); i++) {
                if (END_OF_TURN_PIECES.contains(String.valueOf(list.get(i)))) {
                    stops.add(i);
                }
            }
        }
        return stops.stream().mapToInt(Integer::intValue).toArray();
    }

    /** Per-pair RoPE frequency divisors, or null when the file asks for plain RoPE. */
    private static float[] ropeDivisors(GgufFile gguf, FileChannel channel, LlamaConfig config, String prefix)
            throws IOException {
        String p = prefix + "rope.scaling.";
        Object type = gguf.metadata().getOrDefault(p + "type", "none");
        float linear = 1;
        if ("linear".equals(type)) {
            double factor = gguf.real(p + "factor", 1.0);
            if (!(factor > 0) || Double.isInfinite(factor)) {
                throw new IOException("GGUF metadata " + p + "factor must be finite and > 0; " + p + "factor="
                        + factor + " (model=" + gguf.file() + ")");
            }
            linear = (float) factor;
        } else if (!"none".equals(type)) {
            throw new IllegalArgumentException("rope scaling must be none or linear; " + p + "type=" + GgufFile.show(type));
        }
        int pairs = config.ropeDim() / 2;
        float[] divisors = gguf.tensors().containsKey("rope_freqs.weight")
                ? vector(gguf, channel, "rope_freqs.weight", pairs) : null;
        if (divisors == null && linear == 1) {
            return null;
        }
        float[] out = new float[pairs];
        for (int i = 0; i < pairs; i++) {
            out[i] = (divisors == null ? 1 : divisors[i]) * linear;
        }
        return out;
    }

    /** Integer metadata {@code key} in [1, 2^31-1] ({@code fallback} when absent; Long.MIN_VALUE: required). */
    private static int positive(GgufFile gguf, String key, long fallback) throws IOException {
        long value = gguf.integer(key, fallback);
        if (value <= 0 || value > Integer.MAX_VALUE) {
            throw new IOException("GGUF metadata " + key + " must be an integer in [1, 2147483647]; " + key + "="
                    + value + " (model=" + gguf.file() + ")");
        }
        return (int) value;
    }

    private static WeightMatrix shaped(GgufFile gguf, FileChannel channel, String name, int rows, int cols)
            throws IOException {
        WeightMatrix m = gguf.matrix(channel, name);
        if (m.rows() != rows || m.cols() != cols) {
            throw new IOException("tensor " + name + " must have shape [" + rows + ", " + cols + "]; shape=["
                    + m.rows() + ", " + m.cols() + "]");
        }
        return m;
    }

    private static float[] vector(GgufFile gguf, FileChannel channel, String name, int length) throws IOException {
        return shaped(gguf, channel, name, 1, length).toFloats();
    }

    /**
     * The vocabulary of {@code tokenizer.ggml.*}, or null when the file has none. SentencePiece ({@code llama}):
     * tokens and scores. Byte-level BPE ({@code gpt2}): tokens, {@code token_type}, {@code merges}, {@code pre},
     * {@code bos_token_id} and {@code add_bos_token}.
     */
    static Tokenizer tokenizer(GgufFile gguf) throws IOException {
        Map<String, Object> meta = gguf.metadata();
        Object model = meta.get("tokenizer.ggml.model");
        Object tokens = meta.get("tokenizer.ggml.tokens");
        if (!(model instanceof String kind) || !(tokens instanceof List<?> list)) {
            return null;
        }
        String[] pieces = new String[list.size()];
        for (int i = 0; i < pieces.length; i++) {
            pieces[i] = String.valueOf(list.get(i));
        }
        return switch (kind) {
            case "llama" -> {
                float[] scores = new float[pieces.length];
                if (meta.get("tokenizer.ggml.scores") instanceof List<?> s) {
                    for (int i = 0; i < Math.min(s.size(), scores.length); i++) {
                        if (s.get(i) instanceof Double d) {
                            scores[i] = d.floatValue();
                        }
                    }
                }
                yield new Tokenizer(Tokenizer.Kind.SENTENCEPIECE, pieces, scores, true,
                        (int) gguf.integer("tokenizer.ggml.bos_token_id", 1));
            }
            case "gpt2" -> {
                int[] types = null;
                if (meta.get("tokenizer.ggml.token_type") instanceof List<?> t) {
                    types = new int[t.size()];
                    for (int i = 0; i < types.length; i++) {
                        types[i] = t.get(i) instanceof Long v ? v.intValue() : Tokenizer.NORMAL;
                    }
                }
                List<String> merges = meta.get("tokenizer.ggml.merges") instanceof List<?> m
                        ? m.stream().map(String::valueOf).toList() : null;
                Object pre = meta.get("tokenizer.ggml.pre");
                yield Tokenizer.byteLevelBpe(pieces, types, merges, pre == null ? null : String.valueOf(pre),
                        (int) gguf.integer("tokenizer.ggml.bos_token_id", -1),
                        meta.get("tokenizer.ggml.add_bos_token") instanceof Boolean b ? b : null);
            }
            default -> null;
        };
    }
}
