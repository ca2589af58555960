package io.csattention.model;

import io.csattention.format.FuzzLoop;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The model loaders under {@link FuzzLoop}: a GGUF or llama2.c file is refused with an IOException or an
 * IllegalArgumentException of one line, or loads and runs one prefill step; nothing else (no StackOverflowError, no
 * ArithmeticException, no OutOfMemoryError). Seeds are tiny models written here: GGUF in F32 and Q8_0 with a
 * vocabulary, llama2.c tied and untied.
 */
class ModelFileFuzzTest {

    static final int DIM = 32;
    static final int HIDDEN = 32;
    static final int HEADS = 4;
    static final int KV_HEADS = 2;
    static final int VOCAB = 8;
    static final int CONTEXT = 16;

    @TempDir
    Path dir;

    static float[] random(SplittableRandom r, int n) {
        float[] out = new float[n];
        for (int i = 0; i < n; i++) {
            out[i] = (float) (r.nextGaussian() * 0.1);
        }
        return out;
    }

    static byte[] tinyGguf(TensorType type, long seed) throws IOException {
        SplittableRandom r = new SplittableRandom(seed);
        int kvDim = DIM / HEADS * KV_HEADS;
        List<String> tokens = new ArrayList<>(List.of("<unk>", "<s>", "</s>", "\u2581a", "b", "ab", "\u2581", "c"));
        List<Float> scores = new ArrayList<>();
        for (int i = 0; i < VOCAB; i++) {
            scores.add((float) i);
        }
        GgufWriter w = new GgufWriter().put("general.architecture", "llama").put("general.name", "tiny")
                .put("llama.context_length", CONTEXT).put("llama.embedding_length", DIM)
                .put("llama.feed_forward_length", HIDDEN).put("llama.block_count", 1)
                .put("llama.attention.head_count", HEADS).put("llama.attention.head_count_kv", KV_HEADS)
                .put("llama.rope.dimension_count", DIM / HEADS).put("llama.rope.freq_base", 10000f)
                .put("llama.attention.layer_norm_rms_epsilon", 1e-5f).put("tokenizer.ggml.model", "llama")
                .put("tokenizer.ggml.tokens", tokens).put("tokenizer.ggml.scores", scores)
                .put("tokenizer.ggml.bos_token_id", 1)
                .tensor("token_embd.weight", type, random(r, VOCAB * DIM), VOCAB, DIM)
                .tensor("blk.0.attn_norm.weight", TensorType.F32, random(r, DIM), 1, DIM)
                .tensor("blk.0.attn_q.weight", type, random(r, DIM * DIM), DIM, DIM)
                .tensor("blk.0.attn_k.weight", type, random(r, kvDim * DIM), kvDim, DIM)
                .tensor("blk.0.attn_v.weight", type, random(r, kvDim * DIM), kvDim, DIM)
                .tensor("blk.0.attn_output.weight", type, random(r, DIM * DIM), DIM, DIM)
                .tensor("blk.0.ffn_norm.weight", TensorType.F32, random(r, DIM), 1, DIM)
                .tensor("blk.0.ffn_gate.weight", type, random(r, HIDDEN * DIM), HIDDEN, DIM)
                .tensor("blk.0.ffn_down.weight", type, random(r, DIM * HIDDEN), DIM, HIDDEN)
                .tensor("blk.0.ffn_up.weight", type, random(r, HIDDEN * DIM), HIDDEN, DIM)
                .tensor("output_norm.weight", TensorType.F32, random(r, DIM), 1, DIM);
        return w.bytes();
    }

    /** A legacy llama2.c checkpoint of the tiny shape; a negative vocabulary means an untied classifier. */
    static byte[] tinyLlama2c(boolean tied, long seed) {
        LlamaConfig c = new LlamaConfig(DIM, HIDDEN, 1, HEADS, KV_HEADS, VOCAB, CONTEXT, 10000f, DIM / HEADS, 1e-5f);
        long floats = Llama2cCheckpoint.weightFloats(c, tied);
        ByteBuffer b = ByteBuffer.allocate((int) (Llama2cCheckpoint.HEADER_BYTES + 4 * floats))
                .order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(DIM).putInt(HIDDEN).putInt(1).putInt(HEADS).putInt(KV_HEADS).putInt(tied ? VOCAB : -VOCAB)
                .putInt(CONTEXT);
        for (float f : random(new SplittableRandom(seed), (int) floats)) {
            b.putFloat(f);
        }
        return b.array();
    }

    private FuzzLoop.Target loads(String extension) {
        return (input, i) -> {
            Path file = Files.write(dir.resolve(i + extension), input);
            try {
                LlamaModel model = ModelFiles.load(file);
                model.newSession().prefill(new int[] {0, model.config().vocabSize() - 1});
                return null;
            } finally {
                Files.delete(file);
            }
        };
    }

    @Test
    void ggufFiles() throws Throwable {
        List<byte[]> seeds = List.of(tinyGguf(TensorType.F32, 1), tinyGguf(TensorType.Q8_0, 2),
                tinyGguf(TensorType.F16, 3));
        for (byte[] seed : seeds) {
            assertEquals(null, loads(".gguf").parse(seed, -1), "the seeds load");
        }
        FuzzLoop.Report report = FuzzLoop.run("gguf", seeds, 2500,
                FuzzLoop.tokens("general.alignment", "llama.attention.head_count", "llama.embedding_length",
                        "blk.0.attn_q.weight", "llama.rope.scaling.type", "linear", "tokenizer.ggml.model", "gpt2"),
                loads(".gguf"), List.of(IOException.class, IllegalArgumentException.class));
        assertEquals(List.of(), report.unclean(), report.toString());
    }

    @Test
    void llama2cFiles() throws Throwable {
        List<byte[]> seeds = List.of(tinyLlama2c(true, 4), tinyLlama2c(false, 5));
        for (byte[] seed : seeds) {
            assertEquals(null, loads(".bin").parse(seed, -1), "the seeds load");
        }
        FuzzLoop.Report report = FuzzLoop.run("llama2c", seeds, 2500, List.of(), loads(".bin"),
                List.of(IOException.class, IllegalArgumentException.class));
        assertEquals(List.of(), report.unclean(), report.toString());
    }
}
