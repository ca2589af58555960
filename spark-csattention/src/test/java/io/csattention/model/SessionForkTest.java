package io.csattention.model;

import io.csattention.baseline.AttentionMethod;
import io.csattention.core.CSAttentionSettings;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@link Session#forkWithAttention}: continuations that share the context's index match ones that build their own. */
class SessionForkTest {

    static final long SEED = 5L;

    @Test
    void forksSharingTheIndexContinueLikeSessionsWithTheirOwnIndex() {
        System.out.println("SessionForkTest seed=" + SEED);
        LlamaModel model = Stories260K.model();
        SplittableRandom random = new SplittableRandom(SEED);
        int[] context = random.ints(120, 2, model.config().vocabSize()).toArray();
        context[0] = Stories260K.BOS;
        CSAttentionSettings settings = CSAttentionSettings.defaults().withSparsity(0.8).withCentroids(8);
        Session shared = model.newSession();
        float[] logits = shared.prefill(context);
        shared.useAttention(AttentionMethod.CSATTENTION, settings);
        long indexBytes = shared.indexBytes();
        for (int question = 0; question < 3; question++) {
            int[] tokens = random.ints(4, 2, model.config().vocabSize()).toArray();
            Session fork = shared.forkWithAttention();
            assertEquals(AttentionMethod.CSATTENTION, fork.method());
            Session own = model.newSession();
            float[] ownLogits = own.prefill(context);
            own.useAttention(AttentionMethod.CSATTENTION, settings);
            assertArrayEquals(continuation(own, ownLogits, tokens), continuation(fork, logits, tokens),
                    "question " + question);
        }
        assertEquals(indexBytes, shared.indexBytes());
    }

    /**
     * A float16 context of the small model shape: its forks share the context's K and V rows and key sketch (they
     * hold only what they append) and still continue bit for bit like sessions that prefilled the context into
     * arrays of their own, with either csattention method.
     */
    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(strings = {"csattention", "csattention_group"})
    void halfForksShareTheContextRowsAndContinueLikeWholeSessions(String methodId) {
        AttentionMethod method = AttentionMethod.parse(methodId);
        LlamaModel model = SyntheticModel.build(SyntheticModel.Shape.SMALL, 1, SyntheticModel.Quant.Q8_0, SEED);
        SplittableRandom random = new SplittableRandom(SEED + 1);
        int vocab = model.config().vocabSize();
        int[] context = random.ints(700, 2, vocab).toArray();
        CSAttentionSettings settings = CSAttentionSettings.defaults().withSparsity(0.9).withCentroids(16);
        Session shared = model.newSession(io.csattention.core.KeyValueCache.Precision.F16);
        float[] logits = shared.prefill(context);
        shared.useAttention(method, settings);
        Session own = model.newSession(io.csattention.core.KeyValueCache.Precision.F16);
        float[] ownLogits = own.prefill(context);
        own.useAttention(method, settings);
        Session fork = shared.forkWithAttention();
        assertTrue(fork.kvAllocatedBytes() * 10 < shared.kvAllocatedBytes(), "a fork holds its own rows only: "
                + fork.kvAllocatedBytes() + " bytes against the context's " + shared.kvAllocatedBytes());
        assertArrayEquals(ownLogits, logits);
        for (int step = 0; step < 12; step++) {
            int token = random.nextInt(2, vocab);
            assertArrayEquals(own.decode(token), fork.decode(token), methodId + " step " + step);
        }
    }

    private static int[] continuation(Session session, float[] logits, int[] question) {
        for (int token : question) {
            logits = session.decode(token);
        }
        int[] out = new int[12];
        for (int i = 0; i < out.length; i++) {
            out[i] = Sampler.argmax(logits);
            logits = session.decode(out[i]);
        }
        return out;
    }
}
