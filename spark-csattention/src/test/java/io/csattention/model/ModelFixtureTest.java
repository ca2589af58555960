package io.csattention.model;

import io.csattention.core.KeyValueCache;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Models of modern shape ({@link ModelFixture}): Llama 3.1-structured files in Q8_0 and Q4_K_M / Q5_K_M-like mixes
 * load, agree with the independent float64 forward pass over the file's stored tensors ({@link ReferenceLlama}),
 * generate, and stop at the end-of-sequence id.
 */
class ModelFixtureTest {

    private static final String PROMPT = "The llama said: \"hello, world!\" 123";
    /** float32 blocked forward against float64 on the same decoded weights: about 60x the measured 1.6e-6. */
    private static final double LOGIT_TOLERANCE = 1e-4;
    /**
     * float16 KV against the reference that rounds its own float64 K and V to float16: the two round float32-level
     * different values, so now and then to neighbouring float16 steps; measured up to 2.3e-4 on these fixtures.
     */
    private static final double HALF_KV_TOLERANCE = 4e-4;

    @TempDir
    Path dir;

    @ParameterizedTest
    @EnumSource(value = ModelFixture.Mix.class, names = {"Q8_0", "Q4_K_M", "Q5_K_M"})
    void llama3ShapedMixesLoadMatchTheReferenceAndGenerate(ModelFixture.Mix mix) throws IOException {
        Path file = ModelFixture.llama3().mix(mix).write(dir.resolve("llama3-" + mix + ".gguf"));
        assertTrue(Files.size(file) < 8 << 20, "a few MB; size=" + Files.size(file));
        LlamaModel model = ModelFiles.load(file);
        LlamaConfig c = model.config();
        assertEquals(new LlamaConfig(256, 768, 2, 4, 1, 4096, 4096, 500000f, 64, 1e-5f), c);
        assertEquals(4, c.groupSize());
        assertEquals(mix.base, model.weights().layers().get(0).wq().type());
        assertEquals(mix.moreBits, model.weights().layers().get(1).wv().type());
        assertEquals(mix.moreBits, model.weights().layers().get(1).down().type());
        assertEquals(mix.output, model.weights().classifier().type());
        assertNotSame(model.weights().tokenEmbedding(), model.weights().classifier());
        assertEquals(32, model.weights().ropeDivisors().length);
        assertEquals(8f, model.weights().ropeDivisors()[31], "the slowest pairs are divided by Llama 3.1's factor");

        Tokenizer tokenizer = model.tokenizer().orElseThrow();
        int[] prompt = tokenizer.encode(PROMPT);
        assertEquals(3840, prompt[0], "BOS <|begin_of_text|> renumbered after the 3840 normal tokens");
        assertEquals(PROMPT, tokenizer.decode(prompt));
        checkAgainstReference(model, file, Arrays.copyOf(prompt, 8));

        Session first = model.newSession();
        int[] generated = Generation.run(first, first.prefill(prompt), new Sampler(0, 1, 1), 8, new int[0]).tokens();
        assertEquals(8, generated.length);
        Session session = model.newSession();
        int[] again = Generation.run(session, session.prefill(prompt), new Sampler(0, 1, 1), 8, new int[0]).tokens();
        assertArrayEquals(generated, again, "greedy generation is deterministic");
        assertFalse(tokenizer.decode(generated).isEmpty());
    }

    @Test
    void tiedEmbeddingsHaveNoOutputTensorAndClassifyWithTheEmbedding() throws IOException {
        Path file = ModelFixture.llama3().mix(ModelFixture.Mix.Q4_K_M).tied(true).seed(7)
                .write(dir.resolve("tied.gguf"));
        assertFalse(GgufFile.read(file).tensors().containsKey("output.weight"));
        LlamaModel model = ModelFiles.load(file);
        assertSame(model.weights().tokenEmbedding(), model.weights().classifier());
        checkAgainstReference(model, file, model.tokenizer().orElseThrow().encode("tied embeddings"));
    }

    /**
     * The fixture makes EOS the argmax at a chosen step: generate freely, take the first token that the free run
     * produces at step 2 or later for the first time, and swap its output row with EOS's. The logits of every other
     * token are unchanged, so greedy generation follows the free run and then meets EOS instead of that token.
     */
    @Test
    void greedyGenerationStopsWhereTheFixtureMakesEndOfSequenceTheArgmax() throws IOException {
        Path free = ModelFixture.llama3().write(dir.resolve("free.gguf"));
        LlamaModel freeModel = ModelFiles.load(free);
        int eos = freeModel.tokenizer().orElseThrow().encodeWithSpecials("<|eot_id|>")[1];
        assertTrue(Arrays.binarySearch(freeModel.stopTokens(), eos) >= 0, "<|eot_id|> is a stop token");
        int[] prompt = freeModel.tokenizer().orElseThrow().encode(PROMPT);
        Session s = freeModel.newSession();
        int[] run = Generation.run(s, s.prefill(prompt), new Sampler(0, 1, 1), 12, new int[0]).tokens();
        int step = 2;
        while (step < run.length && contains(Arrays.copyOf(run, step), run[step])) {
            step++;
        }
        assertTrue(step < run.length, "the free run must produce a new token at step 2 or later; run="
                + Arrays.toString(run));
        assertFalse(contains(run, eos));

        Path biased = ModelFixture.llama3().swapOutputRows(eos, run[step]).write(dir.resolve("eos.gguf"));
        LlamaModel model = ModelFiles.load(biased);
        Session session = model.newSession();
        Generation.Result stopped = Generation.run(session, session.prefill(prompt), new Sampler(0, 1, 1), 12,
                model.stopTokens());
        assertTrue(stopped.stopped());
        assertArrayEquals(Arrays.copyOf(run, step), stopped.tokens());
        Session ignoring = model.newSession();
        Generation.Result ignored = Generation.run(ignoring, ignoring.prefill(prompt), new Sampler(0, 1, 1), step + 1,
                new int[0]);
        assertEquals(eos, ignored.tokens()[step], "with the stop set ignored, EOS itself is generated");
    }

    /**
     * A Qwen2-structured file (Q, K, V biases, NEOX RoPE on the file's row order, base 1000000, the qwen2
     * pre-tokenizer): the loader's row reordering and biases against the reference, which rotates NEOX pairs on the
     * stored rows; it generates and stops at {@code <|im_end|>}.
     */
    @ParameterizedTest
    @EnumSource(value = ModelFixture.Mix.class, names = {"Q8_0", "Q4_K_M"})
    void qwen2ShapedFilesWithBiasesLoadMatchTheReferenceAndGenerate(ModelFixture.Mix mix) throws IOException {
        Path file = ModelFixture.qwen2().mix(mix).write(dir.resolve("qwen2-" + mix + ".gguf"));
        LlamaModel model = ModelFiles.load(file);
        assertEquals(1000000f, model.config().ropeBase());
        assertEquals(4, model.config().groupSize());
        LlamaWeights.Layer layer = model.weights().layers().get(1);
        assertEquals(256, layer.qBias().length);
        assertEquals(64, layer.kBias().length);
        assertEquals(64, layer.vBias().length);
        assertEquals(null, model.weights().ropeDivisors());
        Tokenizer tokenizer = model.tokenizer().orElseThrow();
        int[] prompt = tokenizer.encode("Qwen2 counts 1234 digit by digit.");
        assertEquals(tokenizer.encode("Qwen2 counts 1").length + 3, tokenizer.encode("Qwen2 counts 1234").length,
                "the qwen2 pre-tokenizer splits digits one by one");
        assertFalse(prompt[0] == tokenizer.encodeWithSpecials("<|endoftext|>")[0], "Qwen2 adds no BOS");
        checkAgainstReference(model, file, Arrays.copyOf(prompt, 8));

        int imEnd = tokenizer.encodeWithSpecials("<|im_end|>")[0];
        assertTrue(Arrays.binarySearch(model.stopTokens(), imEnd) >= 0, "<|im_end|> is a stop token");
        Session session = model.newSession();
        int[] generated = Generation.run(session, session.prefill(prompt), new Sampler(0, 1, 1), 6,
                model.stopTokens()).tokens();
        assertTrue(generated.length <= 6);
        assertFalse(contains(generated, imEnd));
    }

    /**
     * Without the row reordering the loader does for qwen2, the same weights read as llama (interleaved RoPE on the
     * stored rows) give other logits: the test above would see a missing reordering.
     */
    @Test
    void qwen2RotationDiffersFromLlamasOnTheSameRows() throws IOException {
        Path qwen = ModelFixture.qwen2().write(dir.resolve("qwen2.gguf"));
        LlamaModel model = ModelFiles.load(qwen);
        LlamaWeights w = model.weights();
        int[] inverse = new int[model.config().dim()];
        int[] order = GgufModel.interleavedOrder(model.config().heads(), model.config());
        for (int i = 0; i < order.length; i++) {
            inverse[order[i]] = i;
        }
        assertEquals(order.length, Arrays.stream(inverse).distinct().count(), "a permutation");
        int[] tokens = model.tokenizer().orElseThrow().encode("rotation");
        float[] loaded = model.newSession().prefill(tokens);
        LlamaWeights.Layer l0 = w.layers().get(0);
        LlamaWeights.Layer stored = new LlamaWeights.Layer(l0.attentionNorm(), l0.wq().withRowOrder(inverse), l0.wk(),
                l0.wv(), l0.wo(), l0.ffnNorm(), l0.gate(), l0.down(), l0.up(), l0.qBias(), l0.kBias(), l0.vBias());
        LlamaModel unordered = new LlamaModel(model.config(), new LlamaWeights(w.tokenEmbedding(),
                java.util.List.of(stored, w.layers().get(1)), w.finalNorm(), w.classifier(), null), null);
        float[] other = unordered.newSession().prefill(tokens);
        double worst = 0;
        for (int i = 0; i < loaded.length; i++) {
            worst = Math.max(worst, Math.abs(loaded[i] - other[i]));
        }
        assertTrue(worst > 1e-2, "query rows out of order change the logits; max difference " + worst);
    }

    /**
     * The decode path of a qwen2 file: one decode step after a prefill gives the reference's logits of the whole
     * sequence, and every sparse method at a budget of all keys (the index built on the reordered, biased keys)
     * continues greedily as full attention does.
     */
    @Test
    void qwen2DecodeStepsMatchTheReferenceAndSparseMethodsAtFullBudgetMatchFullAttention() throws IOException {
        Path file = ModelFixture.qwen2().mix(ModelFixture.Mix.Q4_K_M).write(dir.resolve("qwen2-decode.gguf"));
        LlamaModel model = ModelFiles.load(file);
        int[] tokens = model.tokenizer().orElseThrow().encode("one two three four five six seven eight");
        for (KeyValueCache.Precision kv : new KeyValueCache.Precision[]{KeyValueCache.Precision.F32,
                KeyValueCache.Precision.F16}) {
            Session session = model.newSession(kv);
            session.prefill(Arrays.copyOf(tokens, 7));
            compare("decode step, " + kv.id() + " KV", ReferenceLlama.logits(file, Arrays.copyOf(tokens, 8), kv),
                    session.decode(tokens[7]), kv == KeyValueCache.Precision.F32 ? LOGIT_TOLERANCE
                            : HALF_KV_TOLERANCE);
        }

        StringBuilder text = new StringBuilder();
        for (int i = 0; i < 40; i++) {
            text.append("word").append(i).append(i % 7 == 0 ? ".\n" : " ");
        }
        int[] context = model.tokenizer().orElseThrow().encode(text.toString());
        assertTrue(context.length >= 96, "context tokens=" + context.length);
        Session prefilled = model.newSession();
        float[] start = prefilled.prefill(context);
        io.csattention.core.CSAttentionSettings all = io.csattention.core.CSAttentionSettings.defaults()
                .withSparsity(1e-9);
        int[] full = continueGreedy(prefilled.fork(), io.csattention.baseline.AttentionMethod.FULL, all, start);
        for (io.csattention.baseline.AttentionMethod method : io.csattention.baseline.AttentionMethod.values()) {
            assertArrayEquals(full, continueGreedy(prefilled.fork(), method, all, start), method.id());
        }
    }

    private static int[] continueGreedy(Session session, io.csattention.baseline.AttentionMethod method,
                                        io.csattention.core.CSAttentionSettings settings, float[] logits) {
        session.useAttention(method, settings);
        int[] out = new int[8];
        for (int i = 0; i < out.length; i++) {
            out[i] = Sampler.argmax(logits);
            logits = session.decode(out[i]);
        }
        return out;
    }

    private static boolean contains(int[] values, int v) {
        return Arrays.stream(values).anyMatch(x -> x == v);
    }

    /**
     * Prefill logits against the float64 reference over the file's tensors, and the same argmax: with float32 KV
     * within {@link #LOGIT_TOLERANCE} (the forward math), and with the model's default float16 KV against the
     * reference that stores K and V in float16 too, within {@link #HALF_KV_TOLERANCE} (a half value that the
     * session's and the reference's float32-level noise round to neighbouring steps moves a logit more), while the
     * rounding itself moves the logits further than that: a session that ignored its precision fails.
     */
    static void checkAgainstReference(LlamaModel model, Path file, int[] tokens) throws IOException {
        double[] exact = ReferenceLlama.logits(file, tokens, KeyValueCache.Precision.F32);
        compare(file + " f32 KV", exact, model.newSession(KeyValueCache.Precision.F32).prefill(tokens),
                LOGIT_TOLERANCE);
        assertEquals(KeyValueCache.Precision.F16, model.newSession().kvPrecision());
        double[] half = ReferenceLlama.logits(file, tokens, KeyValueCache.Precision.F16);
        compare(file + " f16 KV", half, model.newSession().prefill(tokens), HALF_KV_TOLERANCE);
        double gap = 0;
        for (int i = 0; i < half.length; i++) {
            gap = Math.max(gap, Math.abs(half[i] - exact[i]));
        }
        assertTrue(gap > 2 * HALF_KV_TOLERANCE, "float16 KV moves the reference's logits by only " + gap);
    }

    private static void compare(String what, double[] reference, float[] logits, double tolerance) {
        assertEquals(reference.length, logits.length);
        double worst = 0;
        double scale = 0;
        int best = 0;
        for (int i = 0; i < logits.length; i++) {
            worst = Math.max(worst, Math.abs(logits[i] - reference[i]));
            scale = Math.max(scale, Math.abs(reference[i]));
            best = reference[i] > reference[best] ? i : best;
        }
        System.out.printf("%s: max |logit - float64 logit| = %.3g (max |logit| %.3g)%n", what, worst, scale);
        assertTrue(worst < tolerance, what + ": max |logit - float64 logit| = " + worst);
        assertEquals(best, Sampler.argmax(logits), what);
    }
}
