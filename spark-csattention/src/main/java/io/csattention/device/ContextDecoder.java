package io.csattention.device;

import io.csattention.core.BudgetPlan;
import io.csattention.core.FloatMatrix;

/**
 * One context opened on a {@link DecodeBackend}: decodes blocks of queries [M, d] placed after the context. Thread
 * safe; calls on one decoder may be serialised.
 */
public interface ContextDecoder extends AutoCloseable {

    /** The budget every query of {@link #decode} follows (from the settings, for the context's N keys). */
    BudgetPlan plan();

    /**
     * CSAttention for every query of the block: the selected keys (ascending, as {@code CSAttentionSelector}) and the
     * exact attention output over them.
     */
    DecodedBlock decode(FloatMatrix queries);

    /** Full attention (every key of the context) for every query of the block: outputs [M, d]. */
    FloatMatrix attendAll(FloatMatrix queries);

    @Override
    void close();
}
