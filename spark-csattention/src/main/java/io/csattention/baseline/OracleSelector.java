package io.csattention.baseline;

import io.csattention.core.BudgetPlan;
import io.csattention.core.KeySelector;
import io.csattention.core.KeyValueCache;
import io.csattention.core.Selections;
import io.csattention.core.TopK;
import io.csattention.kernel.VectorKernels;

/** The exact top keys by true score {@code q . k}: the accuracy ceiling of any selector at a given budget. */
public final class OracleSelector implements KeySelector {

    private final VectorKernels kernels;
    private final KeyValueCache cache;

    public OracleSelector(VectorKernels kernels, KeyValueCache cache) {
        this.kernels = kernels;
        this.cache = cache;
    }

    @Override
    public int[] select(float[] query, int queryOff, BudgetPlan plan) {
        int from = plan.middleStart();
        int to = plan.middleEnd();
        float[] scores = new float[plan.keys()];
        cache.dotKeys(kernels, query, queryOff, from, to - from, scores, from);
        return Selections.assemble(plan, TopK.largestInRange(scores, from, to, plan.chosen()));
    }
}
