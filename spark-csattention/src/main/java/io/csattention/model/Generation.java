package io.csattention.model;

import java.util.Arrays;

/**
 * The one generation loop: sample a token from the logits, stop at a stop token (not kept) or after
 * {@code maxNewTokens}, otherwise feed it back. Used by the {@code generate} command and the Spark answers.
 */
public final class Generation {

    private Generation() {
    }

    /** What was generated and why it ended. */
    public record Result(int[] tokens, boolean stopped) {
    }

    /**
     * Generates from {@code logits} (the logits after the prompt) on {@code session}; {@code stopTokens} ascending
     * (empty: generate {@code maxNewTokens} always).
     */
    public static Result run(Session session, float[] logits, Sampler sampler, int maxNewTokens, int[] stopTokens) {
        int[] generated = new int[maxNewTokens];
        float[] current = logits;
        for (int i = 0; i < maxNewTokens; i++) {
            int token = sampler.sample(current);
            if (Arrays.binarySearch(stopTokens, token) >= 0) {
                return new Result(Arrays.copyOf(generated, i), true);
            }
            generated[i] = token;
            if (i + 1 < maxNewTokens) {
                current = session.decode(token);
            }
        }
        return new Result(generated, false);
    }
}
