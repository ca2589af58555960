package io.csattention.core;

import java.util.Arrays;

/**
 * What a decode should approach, computed in float64 in the tests and nowhere else: a query's exact scores against
 * every key, the exact top set under a {@link BudgetPlan}'s sink/window convention, and exact softmax attention over
 * all keys. Nothing here calls the kernels, {@link Attention}, {@link TopK} or a selector.
 */
public final class ExactReference {

    private ExactReference() {
    }

    /** {@code q . k_i} in double for every key i in [0, n) of {@code keys} [n, d]. */
    public static double[] scores(float[] query, int queryOff, float[] keys, int n, int d) {
        double[] out = new double[n];
        for (int i = 0; i < n; i++) {
            double sum = 0;
            for (int c = 0; c < d; c++) {
                sum += (double) query[queryOff + c] * keys[i * d + c];
            }
            out[i] = sum;
        }
        return out;
    }

    /**
     * The ids the exact method attends under {@code plan}, ascending: the first {@code sink} keys, the last
     * {@code window} keys, and the {@code chosen} best-scoring keys in between (equal scores go to the lower id).
     */
    public static int[] oracleSet(double[] scores, BudgetPlan plan) {
        int[] chosen = oracleChosen(scores, plan);
        int[] out = new int[plan.sink() + chosen.length + (plan.keys() - plan.middleEnd())];
        int at = 0;
        for (int i = 0; i < plan.sink(); i++) {
            out[at++] = i;
        }
        for (int id : chosen) {
            out[at++] = id;
        }
        for (int i = plan.middleEnd(); i < plan.keys(); i++) {
            out[at++] = i;
        }
        return out;
    }

    /** Only the keys the method chooses itself: the best {@code plan.chosen()} of [sink, keys - window), ascending. */
    public static int[] oracleChosen(double[] scores, BudgetPlan plan) {
        int from = plan.middleStart();
        int to = plan.middleEnd();
        int wanted = Math.min(plan.chosen(), to - from);
        if (wanted <= 0) {
            return new int[0];
        }
        double[] sorted = Arrays.copyOfRange(scores, from, to);
        Arrays.sort(sorted);
        double cut = sorted[sorted.length - wanted];
        int above = 0;
        for (int i = from; i < to; i++) {
            above += scores[i] > cut ? 1 : 0;
        }
        int ties = wanted - above;
        int[] out = new int[wanted];
        int at = 0;
        for (int i = from; i < to; i++) {
            if (scores[i] > cut || (scores[i] == cut && ties-- > 0)) {
                out[at++] = i;
            }
        }
        return out;
    }

    /** Share of {@code reference} (non-negative ids) that {@code selected} also holds; 1 for an empty reference. */
    public static double recall(int[] reference, int[] selected) {
        java.util.BitSet chosen = new java.util.BitSet();
        for (int id : selected) {
            if (id >= 0) {
                chosen.set(id);
            }
        }
        int total = 0;
        int hit = 0;
        for (int id : reference) {
            if (id >= 0) {
                total++;
                hit += chosen.get(id) ? 1 : 0;
            }
        }
        return total == 0 ? 1.0 : (double) hit / total;
    }

    /** {@code softmax(q K^T / sqrt(d)) V} over every key, from the query's exact {@code scores}. */
    public static double[] attendAll(double[] scores, float[] values, int d) {
        int[] all = new int[scores.length];
        Arrays.setAll(all, i -> i);
        return attend(scores, all, values, d);
    }

    /** {@code softmax(q K_S^T / sqrt(d)) V_S} over the non-negative ids of {@code selected}. */
    public static double[] attend(double[] scores, int[] selected, float[] values, int d) {
        double scale = 1.0 / Math.sqrt(d);
        double max = Double.NEGATIVE_INFINITY;
        for (int id : selected) {
            if (id >= 0) {
                max = Math.max(max, scores[id] * scale);
            }
        }
        double total = 0;
        double[] out = new double[d];
        for (int id : selected) {
            if (id < 0) {
                continue;
            }
            double weight = Math.exp(scores[id] * scale - max);
            total += weight;
            for (int c = 0; c < d; c++) {
                out[c] += weight * values[id * d + c];
            }
        }
        for (int c = 0; c < d; c++) {
            out[c] /= total;
        }
        return out;
    }

    /** {@code ||actual - exact|| / ||exact||} with {@code actual} at {@code actual[off .. off + d)}. */
    public static double relativeError(float[] actual, int off, double[] exact) {
        double diff = 0;
        double norm = 0;
        for (int c = 0; c < exact.length; c++) {
            double delta = actual[off + c] - exact[c];
            diff += delta * delta;
            norm += exact[c] * exact[c];
        }
        return Math.sqrt(diff / Math.max(norm, 1e-300));
    }

    /** {@code ||actual - exact|| / ||exact||} of two float64 outputs. */
    public static double relativeError(double[] actual, double[] exact) {
        double diff = 0;
        double norm = 0;
        for (int c = 0; c < exact.length; c++) {
            double delta = actual[c] - exact[c];
            diff += delta * delta;
            norm += exact[c] * exact[c];
        }
        return Math.sqrt(diff / Math.max(norm, 1e-300));
    }
}
