package io.csattention.baseline;

import io.csattention.core.BudgetPlan;
import io.csattention.core.KeySelector;

/** Exact attention over every key: the reference every other method is measured against. */
public final class FullSelector implements KeySelector {

    @Override
    public int[] select(float[] query, int queryOff, BudgetPlan plan) {
        return java.util.stream.IntStream.range(0, plan.keys()).toArray();
    }
}
