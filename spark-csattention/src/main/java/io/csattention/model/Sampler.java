package io.csattention.model;

import io.csattention.core.Check;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Picks the next token from logits: greedy (argmax) at temperature 0, otherwise a seeded draw from
 * {@code softmax(logits / temperature)} restricted to the smallest set of most likely tokens whose probability
 * reaches {@code topP} (nucleus sampling, as llama2.c's {@code sample_topp}).
 */
public final class Sampler {

    private final float temperature;
    private final float topP;
    private final SplittableRandom random;

    public Sampler(float temperature, float topP, long seed) {
        Check.that(temperature >= 0 && Float.isFinite(temperature), "temperature must be >= 0", "temperature",
                temperature);
        Check.that(topP > 0 && topP <= 1, "top-p must be in (0, 1]", "top-p", topP);
        this.temperature = temperature;
        this.topP = topP;
        this.random = new SplittableRandom(seed);
    }

    public static Sampler greedy() {
        return new Sampler(0, 1, 0);
    }

    /** The index of the largest logit (the first on ties). */
    public static int argmax(float[] logits) {
        int best = 0;
        for (int i = 1; i < logits.length; i++) {
            if (logits[i] > logits[best]) {
                best = i;
            }
        }
        return best;
    }

    /** Natural-log probabilities of {@code logits} (log-softmax), in double precision. */
    public static double[] logSoftmax(float[] logits) {
        double max = Double.NEGATIVE_INFINITY;
        for (float l : logits) {
            max = Math.max(max, l);
        }
        double total = 0;
        for (float l : logits) {
            total += Math.exp(l - max);
        }
        double log = max + Math.log(total);
        double[] out = new double[logits.length];
        for (int i = 0; i < logits.length; i++) {
            out[i] = logits[i] - log;
        }
        return out;
    }

    public int sample(float[] logits) {
        if (temperature == 0) {
            return argmax(logits);
        }
        int n = logits.length;
        double[] probabilities = new double[n];
        double max = Double.NEGATIVE_INFINITY;
        for (float l : logits) {
            max = Math.max(max, l / (double) temperature);
        }
        double total = 0;
        for (int i = 0; i < n; i++) {
            probabilities[i] = Math.exp(logits[i] / (double) temperature - max);
            total += probabilities[i];
        }
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
            probabilities[i] /= total;
        }
        Arrays.sort(order, (a, b) -> Double.compare(probabilities[b], probabilities[a]));
        double cumulative = 0;
        int kept = n;
        for (int i = 0; i < n; i++) {
            cumulative += probabilities[order[i]];
            if (cumulative >= topP) {
                kept = i + 1;
                break;
            }
        }
        double draw = random.nextDouble() * Math.min(cumulative, 1.0);
        double running = 0;
        for (int i = 0; i < kept; i++) {
            running += probabilities[order[i]];
            if (draw < running) {
                return order[i];
            }
        }
        return order[kept - 1];
    }
}
