package io.csattention.eval;

/** Accuracy measures of one query's selection and output. */
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

    public static double mean(double[] values) {
        double sum = 0;
        for (double v : values) {
            sum += v;
        }
        return values.length == 0 ? Double.NaN : sum / values.length;
    }

    /** The q-quantile (0..1) by the nearest-rank rule. */
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
