package io.csattention.model;

import io.csattention.core.BudgetPlan;
import io.csattention.core.KeyValueCache;

/**
 * Watches every decode-step attention of a {@link Session} (used by evaluations to compare a method's selection
 * and output with the oracle's and full attention's on the model's own queries). Called concurrently for
 * different (layer, head) pairs, never for the same pair at once.
 */
@FunctionalInterface
public interface AttentionProbe {

    /**
     * Query head {@code head} of {@code layer} attended {@code selected} keys of {@code cache} under {@code plan};
     * its query is {@code query[queryOff .. +headSize)} and its output {@code out[outOff .. +headSize)}.
     */
    void observe(int layer, int head, float[] query, int queryOff, KeyValueCache cache, BudgetPlan plan,
                 int[] selected, float[] out, int outOff);
}
