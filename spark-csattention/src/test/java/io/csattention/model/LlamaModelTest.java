package io.csattention.model;

import io.csattention.baseline.AttentionMethod;
import io.csattention.core.CSAttentionSettings;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class LlamaModelTest {

    private final LlamaModel model = Stories260K.model();

    @Test
    void readsTheCheckpointHeader() {
        LlamaConfig c = model.config();
        assertEquals(new LlamaConfig(64, 172, 5, 8, 4, 512, 512, 10000f, 8, 1e-5f), c);
        assertTrue(model.weights().classifier() == model.weights().tokenEmbedding(), "classifier tied");
    }

    @Test
    void greedyDecodingFromBosReproducesLlama2cRunCTokenForToken() throws Exception {
        String text = java.nio.file.Files.readString(Stories260K.path().resolveSibling("stories260K.greedy256.txt"));
        int[] expected = java.util.Arrays.stream(text.trim().split("\\s+")).mapToInt(Integer::parseInt).toArray();
        assertEquals(256, expected.length);
        assertArrayEquals(expected, Stories260K.greedy(model, new int[] {Stories260K.BOS}, expected.length));
    }

    @Test
    void greedyDecodingFromBosIsDeterministic() {
        int[] first = Stories260K.greedy(model, new int[] {Stories260K.BOS}, 48);
        int[] second = Stories260K.greedy(model, new int[] {Stories260K.BOS}, 48);
        assertArrayEquals(first, second);
        assertTrue(java.util.Arrays.stream(first).distinct().count() > 5, "a story, not one repeated token");
    }

    @Test
    void stepLogitsMatchAFloat64Recomputation() {
        int[] story = Stories260K.greedy(model, new int[] {Stories260K.BOS}, 20);
        int[] tokens = new int[21];
        tokens[0] = Stories260K.BOS;
        System.arraycopy(story, 0, tokens, 1, 20);
        Session session = model.newSession();
        float[] logits = null;
        for (int token : tokens) {
            logits = session.decode(token);
        }
        double[] reference = ReferenceLlama.logits(model, tokens);
        double worst = 0;
        for (int i = 0; i < reference.length; i++) {
            worst = Math.max(worst, Math.abs(reference[i] - logits[i]));
        }
        assertTrue(worst < 2e-4, "max |logit - float64 logit| = " + worst);
        assertEquals(argmax(reference), Sampler.argmax(logits));
    }

    @Test
    void prefillThenDecodeEqualsTokenByTokenDecoding() {
        int[] story = Stories260K.greedy(model, new int[] {Stories260K.BOS}, 150);
        int[] prompt = new int[150];
        prompt[0] = Stories260K.BOS;
        System.arraycopy(story, 0, prompt, 1, 149);
        Session blocked = model.newSession();
        blocked.prefill(java.util.Arrays.copyOf(prompt, 149));
        float[] fromPrefill = blocked.decode(prompt[149]);
        Session stepwise = model.newSession();
        float[] fromDecode = null;
        for (int token : prompt) {
            fromDecode = stepwise.decode(token);
        }
        assertArrayEquals(fromDecode, fromPrefill, 1e-4f);
        float[] prefillLast = model.newSession().prefill(prompt);
        assertArrayEquals(fromDecode, prefillLast, 1e-4f);
    }

    @Test
    void everySparseMethodAtABudgetOfAllKeysDecodesLikeFullAttention() {
        int[] context = new int[96];
        context[0] = Stories260K.BOS;
        System.arraycopy(Stories260K.greedy(model, new int[] {Stories260K.BOS}, 95), 0, context, 1, 95);
        Session prefilled = model.newSession();
        float[] start = prefilled.prefill(context);
        CSAttentionSettings settings = CSAttentionSettings.defaults().withSparsity(1e-9);
        int[] reference = continueGreedy(prefilled.fork(), AttentionMethod.FULL, settings, start);
        for (AttentionMethod method : AttentionMethod.values()) {
            int[] tokens = continueGreedy(prefilled.fork(), method, settings, start);
            assertArrayEquals(reference, tokens, method.id());
        }
    }

    private static int[] continueGreedy(Session session, AttentionMethod method, CSAttentionSettings settings,
                                        float[] logits) {
        session.useAttention(method, settings);
        int[] out = new int[24];
        for (int i = 0; i < out.length; i++) {
            out[i] = Sampler.argmax(logits);
            logits = session.decode(out[i]);
        }
        return out;
    }

    private static int argmax(double[] values) {
        int best = 0;
        for (int i = 1; i < values.length; i++) {
            if (values[i] > values[best]) {
                best = i;
            }
        }
        return best;
    }
}
