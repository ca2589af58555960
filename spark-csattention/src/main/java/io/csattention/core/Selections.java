package io.csattention.core;

/** Helpers that turn a method's choice into the common selection shape. */
public final class Selections {

    private Selections() {
    }

    /**
     * Sink keys, window keys and the method's {@code chosen} keys (distinct, from the middle range), ascending,
     * padded with -1 to the budget when the method chose fewer.
     */
    public static int[] assemble(BudgetPlan plan, int[] chosen) {
        int limit = Math.min(chosen.length, plan.chosen());
        int[] sorted = java.util.Arrays.copyOf(chosen, limit);
        ascending(sorted, limit, new long[(plan.keys() + 63) >>> 6], plan.middleStart(), plan.middleEnd());
        return assembleAscending(plan, sorted, limit);
    }

    /**
     * Sorts {@code ids[0 .. count)}, distinct keys of [from, to), ascending in time linear in the range's words: a
     * bitmap walk instead of a comparison sort. {@code bits} covers the range and is left zeroed.
     */
    private static void ascending(int[] ids, int count, long[] bits, int from, int to) {
        for (int i = 0; i < count; i++) {
            bits[ids[i] >>> 6] |= 1L << ids[i];
        }
        int at = 0;
        for (int word = from >>> 6; at < count && word <= (to - 1) >>> 6; word++) {
            long w = bits[word];
            bits[word] = 0L;
            while (w != 0L) {
                ids[at++] = (word << 6) + Long.numberOfTrailingZeros(w);
                w &= w - 1;
            }
        }
    }

    /** {@link #assemble} for {@code count} chosen keys already in ascending order: no sort. */
    public static int[] assembleAscending(BudgetPlan plan, int[] chosen, int count) {
        int[] out = new int[plan.budget()];
        int at = 0;
        for (int i = 0; i < plan.sink(); i++) {
            out[at++] = i;
        }
        int limit = Math.min(count, plan.chosen());
        System.arraycopy(chosen, 0, out, at, limit);
        at += limit;
        for (int i = plan.middleEnd(); i < plan.keys(); i++) {
            out[at++] = i;
        }
        java.util.Arrays.fill(out, at, out.length, -1);
        return out;
    }
}
