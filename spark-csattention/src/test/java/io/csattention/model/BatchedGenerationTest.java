package io.csattention.model;

import io.csattention.baseline.AttentionMethod;
import io.csattention.core.CSAttentionSettings;
import io.csattention.core.KeyValueCache;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Batched decoding of a context's questions ({@link Session#decodeBatch}, {@link Generation#runBatch}): every
 * question's answer and every step's logits are those of the question decoded alone on its own fork, whatever the
 * batch size, with questions of different prompt lengths, limits and samplers finishing at different steps.
 */
class BatchedGenerationTest {

    static final long SEED = 20261202L;

    @ParameterizedTest
    @EnumSource(value = AttentionMethod.class, names = {"FULL", "CSATTENTION", "CSATTENTION_GROUP"})
    void aBatchAnswersEachQuestionAsItAloneWould(AttentionMethod method) {
        System.out.println("BatchedGenerationTest seed=" + SEED);
        LlamaModel model = Stories260K.model();
        SplittableRandom random = new SplittableRandom(SEED);
        int vocab = model.config().vocabSize();
        int[] context = random.ints(150, 2, vocab).toArray();
        context[0] = Stories260K.BOS;
        Session shared = model.newSession();
        float[] contextLogits = shared.prefill(context);
        shared.useAttention(method, CSAttentionSettings.defaults().withSparsity(0.8).withCentroids(8));
        // a stop token that greedy decoding meets: the most likely token after the context
        int[] stop = {Sampler.argmax(contextLogits)};
        List<Generation.Request> requests = new ArrayList<>();
        List<Generation.Result> alone = new ArrayList<>();
        for (int i = 0; i < 11; i++) {
            int[] prompt = random.ints(i % 4, 2, vocab).toArray();
            int limit = 3 + (i * 5) % 9;
            long samplingSeed = 100 + i;
            float temperature = i % 3 == 0 ? 0f : 0.8f;
            requests.add(new Generation.Request(prompt, new Sampler(temperature, 0.9f, samplingSeed), limit));
            Session fork = shared.forkWithAttention();
            float[] logits = contextLogits;
            for (int token : prompt) {
                logits = fork.decode(token);
            }
            alone.add(Generation.run(fork, logits, new Sampler(temperature, 0.9f, samplingSeed), limit, stop));
        }
        boolean someStopped = alone.stream().anyMatch(Generation.Result::stopped);
        boolean someRanOut = alone.stream().anyMatch(r -> !r.stopped());
        assertTrue(someStopped && someRanOut, "the requests end both ways");
        for (int batch : new int[] {1, 3, 16}) {
            // fresh samplers: they keep state
            List<Generation.Request> fresh = new ArrayList<>();
            for (int i = 0; i < requests.size(); i++) {
                Generation.Request r = requests.get(i);
                fresh.add(new Generation.Request(r.prompt(), new Sampler(i % 3 == 0 ? 0f : 0.8f, 0.9f, 100 + i),
                        r.maxNewTokens()));
            }
            List<Generation.Result> batched = Generation.runBatch(shared, contextLogits, fresh, batch, stop);
            assertEquals(requests.size(), batched.size());
            for (int i = 0; i < requests.size(); i++) {
                assertArrayEquals(alone.get(i).tokens(), batched.get(i).tokens(), "batch " + batch + " request " + i);
                assertEquals(alone.get(i).stopped(), batched.get(i).stopped(), "batch " + batch + " request " + i);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(value = AttentionMethod.class, names = {"FULL", "CSATTENTION"})
    void aBatchedStepGivesEachSequenceItsOwnLogitsBitForBit(AttentionMethod method) {
        LlamaModel model = Stories260K.model();
        SplittableRandom random = new SplittableRandom(SEED + 1);
        int vocab = model.config().vocabSize();
        int[] context = random.ints(130, 2, vocab).toArray();
        Session shared = model.newSession();
        shared.prefill(context);
        shared.useAttention(method, CSAttentionSettings.defaults().withSparsity(0.8).withCentroids(8));
        Session[] batch = new Session[5];
        Session[] single = new Session[5];
        for (int i = 0; i < batch.length; i++) {
            batch[i] = shared.forkWithAttention();
            single[i] = shared.forkWithAttention();
            // sequences at different positions
            for (int j = 0; j < i; j++) {
                int token = random.nextInt(2, vocab);
                batch[i].decode(token);
                single[i].decode(token);
            }
        }
        for (int step = 0; step < 4; step++) {
            int[] tokens = random.ints(batch.length, 2, vocab).toArray();
            float[][] together = Session.decodeBatch(batch, tokens);
            for (int i = 0; i < batch.length; i++) {
                float[] own = single[i].decode(tokens[i]);
                for (int v = 0; v < vocab; v++) {
                    assertEquals(Float.floatToIntBits(own[v]), Float.floatToIntBits(together[i][v]),
                            "step " + step + " sequence " + i + " logit " + v);
                }
                assertEquals(single[i].position(), batch[i].position());
            }
        }
        IllegalArgumentException repeated = assertThrows(IllegalArgumentException.class,
                () -> Session.decodeBatch(new Session[] {batch[0], batch[0]}, new int[] {3, 4}));
        assertEquals("a batch's sessions must be distinct sequences of one model; session 1 is repeated",
                repeated.getMessage());
    }

    /**
     * Full attention of sibling forks in one batch reads their context's rows once ({@code Attention.attendGroups}):
     * on the small synthetic shape (d = 64, 8 query heads on 2 KV heads, one layer) with a context of several
     * 128-key chunks and a last partial one, each fork's logits are bit for bit those of the fork decoded alone, for
     * every KV precision, with a fork of a fork and the context's own session in the same batch. Fails when a chunk
     * that is not wholly context is read from the context (the forks' own rows differ there), or when the
     * sequences' scores or outputs are swapped.
     */
    @ParameterizedTest
    @ValueSource(strings = {"f16", "bf16", "f32"})
    void siblingForksReadTheirContextOnceAndKeepTheirOwnBits(String precision) {
        LlamaModel model = SyntheticModel.build(SyntheticModel.Shape.SMALL, 1, SyntheticModel.Quant.Q8_0, SEED);
        SplittableRandom random = new SplittableRandom(SEED + 2);
        int vocab = model.config().vocabSize();
        Session context = model.newSession(KeyValueCache.Precision.parse(precision));
        context.prefill(random.ints(300, 2, vocab).toArray());
        int forks = 6;
        Session[] batch = new Session[forks + 1];
        Session[] single = new Session[forks + 1];
        for (int i = 0; i < forks; i++) {
            batch[i] = context.fork();
            single[i] = context.fork();
            // different positions: some cross the next chunk boundary (384) during the steps
            for (int j = 0; j < 20 * i; j++) {
                int token = random.nextInt(2, vocab);
                batch[i].decode(token);
                single[i].decode(token);
            }
        }
        // a fork of a fork (its own context: the fork's caches) and the context's session itself
        Session grandchild = batch[1].fork();
        batch[forks] = grandchild;
        single[forks] = batch[1].fork();
        // a fork made after the context went on: it shares with the others only the rows they all copied, and it
        // comes first in the batch
        for (int j = 0; j < 5; j++) {
            context.decode(random.nextInt(2, vocab));
        }
        Session late = context.fork();
        Session lateAlone = context.fork();
        batch = prepend(late, batch);
        single = prepend(lateAlone, single);
        Session[] withContext = java.util.Arrays.copyOf(batch, batch.length + 1);
        withContext[batch.length] = context;
        Session contextAlone = context.fork();
        for (int step = 0; step < 3; step++) {
            int[] tokens = random.ints(withContext.length, 2, vocab).toArray();
            float[][] together = Session.decodeBatch(withContext, tokens);
            for (int i = 0; i < withContext.length; i++) {
                float[] own = i < single.length ? single[i].decode(tokens[i]) : contextAlone.decode(tokens[i]);
                for (int v = 0; v < vocab; v++) {
                    assertEquals(Float.floatToIntBits(own[v]), Float.floatToIntBits(together[i][v]),
                            precision + " step " + step + " sequence " + i + " logit " + v);
                }
            }
        }
    }

    private static Session[] prepend(Session first, Session[] rest) {
        Session[] out = new Session[rest.length + 1];
        out[0] = first;
        System.arraycopy(rest, 0, out, 1, rest.length);
        return out;
    }
}
