package io.csattention.core;

/**
 * How many keys a query attends and which are forced: the first {@code sink} keys, the last {@code window} keys,
 * and {@code budget - sink - window} chosen by the method from the keys in between. The budget counts every attended
 * key: {@code budget = ceil((1 - sparsity) * n)}, at least 1.
 */
public record BudgetPlan(int keys, int budget, int sink, int window) {

    /** Sink and window sizes used when they are not given: small shares of the budget, capped. */
    public static final int DEFAULT_SINK_CAP = 4;
    public static final int DEFAULT_WINDOW_CAP = 64;

    public BudgetPlan {
        Check.that(budget >= sink + window, "budget must be >= sink + window = " + (sink + window), "budget", budget);
    }

    /**
     * The plan for {@code keys} keys. {@code sink} or {@code window} below zero mean "choose": up to 4 sink keys and
     * up to 64 window keys, each at most an eighth of the budget.
     */
    public static BudgetPlan of(int keys, double sparsity, int sink, int window) {
        Check.openUnit(sparsity, "sparsity");
        int budget = (int) Math.min(keys, Math.max(1, Math.ceil((1 - sparsity) * keys - 1e-9)));
        int s = sink >= 0 ? sink : Math.min(DEFAULT_SINK_CAP, budget / 8);
        int w = window >= 0 ? window : Math.min(DEFAULT_WINDOW_CAP, budget / 8);
        if (sink >= 0 || window >= 0) {
            Check.that(budget >= s + w, "budget must be >= sink + window = " + (s + w) + " (raise sparsity's "
                    + "budget or lower --sink/--window)", "budget", budget);
        }
        s = Math.min(s, keys);
        w = Math.min(w, keys - s);
        return new BudgetPlan(keys, budget, s, w);
    }

    /** A plan that attends every key (used for {@code full}). */
    public static BudgetPlan all(int keys) {
        return new BudgetPlan(keys, keys, 0, 0);
    }

    /** The number of keys the method chooses itself. */
    public int chosen() {
        return budget - sink - window;
    }

    /** First key index the method chooses from (inclusive). */
    public int middleStart() {
        return sink;
    }

    /** Last key index the method chooses from (exclusive). */
    public int middleEnd() {
        return keys - window;
    }
}
