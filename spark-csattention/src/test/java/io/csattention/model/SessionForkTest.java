package io.csattention.model;

import io.csattention.baseline.AttentionMethod;
import io.csattention.core.CSAttentionSettings;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

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
