package io.csattention.eval;

import io.csattention.baseline.AttentionMethod;

/**
 * One method's outcome on a set of decode queries: its selections [M, width] (ascending, -1 padded), outputs [M, d],
 * and the summary metrics against {@code full} (output) and {@code oracle} (selection).
 */
public record MethodResult(
        AttentionMethod method,
        int[] selected,
        int selectionWidth,
        float[] outputs,
        double meanRecall,
        double p10Recall,
        double meanMassRecall,
        double meanRelativeError,
        double p90RelativeError,
        double buildMillis,
        double decodeMicrosPerQuery,
        long indexBytes,
        int budget) {
}
