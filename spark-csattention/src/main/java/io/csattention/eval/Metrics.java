package io.csattention.eval;

/**
 * The one metrics module: accuracy of a selection (recall of a reference set, attention mass) and of an output
 * (relative L2 error), and the summaries every command and test reports them with. The rules, once:
 * <ul>
 *   <li>ids below 0 in a selection or reference are padding and do not count; an empty reference has recall 1;</li>
 *   <li>relative error is {@code ||a - b|| / ||b||}, and {@code ||a - b||} when the reference {@code b} is zero;</li>
 *   <li>quantiles use the nearest-rank rule: the q-quantile of n sorted values is the one at rank
 *       {@code ceil(q n)} (1-based), clamped to [1, n]; p10 is {@code quantile(values, 0.1)}.</li>
 * </ul>
 */
public final class Metrics {

    private Metrics() {
    }

    /** Share of the reference set (non-negative entries) that {@code selected} also holds; 1 for an empty reference. */
    public static double recall(int[] selected, int selectedOff, int selectedWidth, int[] reference, int referenceOff,
                                int referenceWidth) {
        java.util.BitSet chosen = new java.util.BitSet();
        for (int j = 0; j < selectedWidth && selected[selectedOff + j] >= 0; j++) {
            chosen.set(selected[selectedOff + j]);
        }
        int total = 0;
        int hit = 0;
        for (int j = 0; j < referenceWidth && reference[referenceOff + j] >= 0; j++) {
            total++;
            if (chosen.get(reference[referenceOff + j])) {
                hit++;
            }
        }
        return total == 0 ? 1.0 : (double) hit / total;
    }

    /** {@link #recall(int[], int, int, int[], int, int)} of two whole id arrays. */
    public static double recall(int[] selected, int[] reference) {
        return recall(selected, 0, selected.length, reference, 0, reference.length);
    }

    /** The recall of each selection against the reference of the same row. */
    public static double[] recalls(int[][] selections, int[][] reference) {
        double[] out = new double[selections.length];
        for (int i = 0; i < selections.length; i++) {
            out[i] = recall(selections[i], reference[i]);
        }
        return out;
    }

    /** Share of full attention's softmax mass (over all keys, given as probabilities) on the selected keys. */
    public static double massRecall(int[] selected, int selectedOff, int width, double[] probabilities) {
        double mass = 0;
        for (int j = 0; j < width && selected[selectedOff + j] >= 0; j++) {
            mass += probabilities[selected[selectedOff + j]];
        }
        return mass;
    }

    /** {@code ||a - b|| / ||b||} over {@code d} values. */
    public static double relativeError(float[] a, int aOff, float[] b, int bOff, int d) {
        double diff = 0;
        double norm = 0;
        for (int c = 0; c < d; c++) {
            double delta = a[aOff + c] - b[bOff + c];
            diff += delta * delta;
            norm += (double) b[bOff + c] * b[bOff + c];
        }
        return norm == 0 ? Math.sqrt(diff) : Math.sqrt(diff / norm);
    }

    /** The mean over rows of the relative error of each row of {@code actual} against the same row of {@code reference}. */
    public static double meanRelativeError(io.csattention.core.FloatMatrix actual,
                                           io.csattention.core.FloatMatrix reference) {
        int d = reference.cols();
        double sum = 0;
        for (int i = 0; i < reference.rows(); i++) {
            sum += relativeError(actual.data(), i * d, reference.data(), i * d, d);
        }
        return sum / reference.rows();
    }

    public static double mean(double[] values) {
        double sum = 0;
        for (double v : values) {
            sum += v;
        }
        return values.length == 0 ? Double.NaN : sum / values.length;
    }

    /** The q-quantile (0..1) by the nearest-rank rule (see the class comment); NaN for no values. */
    public static double quantile(double[] values, double q) {
        if (values.length == 0) {
            return Double.NaN;
        }
        double[] sorted = values.clone();
        java.util.Arrays.sort(sorted);
        int rank = (int) Math.ceil(q * sorted.length) - 1;
        return sorted[Math.max(0, Math.min(sorted.length - 1, rank))];
    }
}
