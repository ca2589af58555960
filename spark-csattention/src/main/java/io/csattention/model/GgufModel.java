package io.csattention.model;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Builds a {@link LlamaModel} from a GGUF file of architecture {@code llama}: dimensions from the
 * {@code llama.*} metadata, tensors by llama.cpp's names ({@code token_embd}, {@code blk.N.attn_q} ...,
 * {@code output_norm}, {@code output}, tied to the embedding when absent), the vocabulary from
 * {@code tokenizer.ggml.*}. RoPE frequency scaling: Llama 3.1's per-pair divisors ({@code rope_freqs.weight}) and
 * linear scaling ({@code llama.rope.scaling.type = linear}, {@code llama.rope.scaling.factor}) are applied; other
 * scaling types (YaRN) are refused.
 */
public final class GgufModel {

    public static final String ARCHITECTURE = "llama";

    private GgufModel() {
    }

    public static LlamaModel load(Path file) throws IOException {
        GgufFile gguf = GgufFile.read(file);
        String architecture = gguf.string("general.architecture");
        if (!ARCHITECTURE.equals(architecture)) {
            throw new IllegalArgumentException("architecture must be " + ARCHITECTURE
                    + "; general.architecture=" + GgufFile.show(architecture));
        }
        String p = ARCHITECTURE + ".";
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
            for (int l = 0; l < config.layers(); l++) {
                String b = "blk." + l + ".";
                layers.add(new LlamaWeights.Layer(
                        vector(gguf, channel, b + "attn_norm.weight", dim),
                        shaped(gguf, channel, b + "attn_q.weight", dim, dim),
                        shaped(gguf, channel, b + "attn_k.weight", config.kvDim(), dim),
                        shaped(gguf, channel, b + "attn_v.weight", config.kvDim(), dim),
                        shaped(gguf, channel, b + "attn_output.weight", dim, dim),
                        vector(gguf, channel, b + "ffn_norm.weight", dim),
                        shaped(gguf, channel, b + "ffn_gate.weight", config.hiddenDim(), dim),
                        shaped(gguf, channel, b + "ffn_down.weight", dim, config.hiddenDim()),
                        shaped(gguf, channel, b + "ffn_up.weight", config.hiddenDim(), dim)));
            }
            float[] finalNorm = vector(gguf, channel, "output_norm.weight", dim);
            WeightMatrix classifier = gguf.tensors().containsKey("output.weight")
                    ? shaped(gguf, channel, "output.weight", config.vocabSize(), dim) : tokenEmbedding;
            return new LlamaModel(config, new LlamaWeights(tokenEmbedding, layers, finalNorm, classifier,
                    ropeDivisors(gguf, channel, config)), tokenizer(gguf), stopTokens(gguf, config.vocabSize()));
        }
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
    private static float[] ropeDivisors(GgufFile gguf, FileChannel channel, LlamaConfig config) throws IOException {
        String p = ARCHITECTURE + ".rope.scaling.";
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
