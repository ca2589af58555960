package io.csattention.device;

import io.csattention.core.BudgetPlan;
import io.csattention.core.FloatMatrix;

/**
 * The result of decoding a block of M queries: {@code selected} [M, budget] row-major (ascending key ids per row,
 * padded with -1 only where fewer keys were attended) and {@code outputs} [M, d].
 */
public record DecodedBlock(BudgetPlan plan, int[] selected, FloatMatrix outputs) {

    public DecodedBlock {
        io.csattention.core.Check.that(selected.length == (long) outputs.rows() * plan.budget(),
                "selected must hold queries*budget=" + ((long) outputs.rows() * plan.budget()) + " ids",
                "selected.length", selected.length);
    }

    /** The selection of query {@code q}. */
    public int[] selected(int q) {
        return java.util.Arrays.copyOfRange(selected, q * plan.budget(), (q + 1) * plan.budget());
    }

    public int queries() {
        return outputs.rows();
    }
}
