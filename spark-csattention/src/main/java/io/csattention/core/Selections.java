package io.csattention.core;

/** Helpers that turn a method's choice into the common selection shape. */
public final class Selections {

    private Selections() {
    }

    /**
     * Sink keys, window keys and the method's {@code chosen} keys (from the middle range), ascending, padded with
     * -1 to the budget when the method chose fewer.
     */
    public static int[] assemble(BudgetPlan plan, int[] chosen) {
        int[] out = new int[plan.budget()];
        int count = 0;
        for (int i = 0; i < plan.sink(); i++) {
            out[count++] = i;
        }
        int[] sorted = chosen.clone();
        java.util.Arrays.sort(sorted);
        int limit = Math.min(sorted.length, plan.chosen());
        System.arraycopy(sorted, 0, out, count, limit);
        count += limit;
        for (int i = plan.middleEnd(); i < plan.keys(); i++) {
            out[count++] = i;
        }
        java.util.Arrays.fill(out, count, out.length, -1);
        return out;
    }
}
