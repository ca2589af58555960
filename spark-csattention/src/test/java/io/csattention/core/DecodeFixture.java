package io.csattention.core;

import io.csattention.eval.SyntheticContext;
import io.csattention.kernel.Kernels;
import io.csattention.kernel.VectorKernels;

import java.util.Arrays;
import java.util.function.IntPredicate;

/**
 * One generated long-context head ({@link SyntheticContext}: RoPE base 500000, content in the slow bands) indexed as
 * the benchmark indexes it: the default settings, the RoPE layout of the head's prefill positions, reference position
 * N. With it, what the decode tests measure against float64 ({@link ExactReference}).
 */
record DecodeFixture(SyntheticContext.Spec spec, SyntheticContext.Head head, KeyValueCache cache,
                     CSAttentionIndex index, CSAttentionSelector selector, BudgetPlan plan) {

    static final VectorKernels KERNELS = Kernels.preferred();

    static DecodeFixture of(int tokens, int dim, int queries, long seed) {
        System.out.println("DecodeFixture tokens=" + tokens + " d=" + dim + " queries=" + queries + " data seed="
                + seed + " settings seed=" + CSAttentionSettings.defaults().seed());
        long start = System.nanoTime();
        SyntheticContext.Spec spec = SyntheticContext.Spec.of(tokens, dim, queries, seed);
        SyntheticContext.Head head = SyntheticContext.generate(spec);
        RopeInfo rope = new RopeInfo(spec.ropeBase(), spec.ropeStyle(), head.prefillQueryPositions(), tokens,
                RopeInfo.DEFAULT_DECODE_SPAN);
        CSAttentionSettings settings = CSAttentionSettings.defaults();
        CSAttentionIndex index = CSAttentionIndex.build(KERNELS, head.keys(), head.prefillQueries(), settings, rope);
        KeyValueCache cache = KeyValueCache.of(head.keys(), head.values());
        CSAttentionSelector selector = new CSAttentionSelector(KERNELS, index, cache, settings.rescoreFactor());
        System.out.printf("  generated and indexed in %.1f s%n", (System.nanoTime() - start) / 1e9);
        return new DecodeFixture(spec, head, cache, index, selector, settings.plan(tokens));
    }

    int dim() {
        return cache.dim();
    }

    long seed() {
        return spec.seed();
    }

    /** The queries decoded through {@link BlockDecoder} (one thread, default blocks), row i at positions[i]. */
    BlockDecoder.Result decode(FloatMatrix queries, long[] positions) {
        try (BlockDecoder decoder = new BlockDecoder(KERNELS, 1, BlockDecoder.DEFAULT_QUERY_BLOCK)) {
            return decoder.decode(cache, selector, plan, queries, positions);
        }
    }

    /** The head's own decode queries at their own positions, decoded and measured. */
    Accuracy decodeOwnQueries(String what) {
        long start = System.nanoTime();
        BlockDecoder.Result result = decode(head.queries(), head.queryPositions());
        Accuracy accuracy = accuracy(head.queries(), result);
        System.out.printf("%s: %s (decode and float64 reference %.1f s)%n", what, accuracy.describe(),
                (System.nanoTime() - start) / 1e9);
        return accuracy;
    }

    /**
     * Per query: recall of the exact chosen keys (the best {@code chosen} of the middle range in float64), and of
     * those among them that {@code part} accepts; relative L2 error against exact attention over all N keys, and that
     * of attending the exact top set (the best any selection of the budget does).
     */
    Accuracy accuracy(FloatMatrix queries, BlockDecoder.Result result, IntPredicate part) {
        int n = cache.size();
        int d = dim();
        int m = queries.rows();
        double[] recall = new double[m];
        double[] partRecall = new double[m];
        double[] error = new double[m];
        double[] oracleError = new double[m];
        float[] keys = head.keys().data();
        float[] values = head.values().data();
        for (int q = 0; q < m; q++) {
            double[] scores = ExactReference.scores(queries.data(), q * d, keys, n, d);
            double[] exact = ExactReference.attendAll(scores, values, d);
            int[] chosen = ExactReference.oracleChosen(scores, plan);
            recall[q] = ExactReference.recall(chosen, result.selections()[q]);
            partRecall[q] = ExactReference.recall(Arrays.stream(chosen).filter(part).toArray(),
                    result.selections()[q]);
            error[q] = ExactReference.relativeError(result.outputs().data(), q * d, exact);
            oracleError[q] = ExactReference.relativeError(
                    ExactReference.attend(scores, ExactReference.oracleSet(scores, plan), values, d), exact);
        }
        return new Accuracy(recall, partRecall, error, oracleError);
    }

    Accuracy accuracy(FloatMatrix queries, BlockDecoder.Result result) {
        return accuracy(queries, result, id -> true);
    }

    record Accuracy(double[] recall, double[] partRecall, double[] error, double[] oracleError) {

        double meanRecall() {
            return mean(recall);
        }

        double minRecall() {
            return Arrays.stream(recall).min().orElseThrow();
        }

        double meanPartRecall() {
            return mean(partRecall);
        }

        double meanError() {
            return mean(error);
        }

        double maxError() {
            return Arrays.stream(error).max().orElseThrow();
        }

        String describe() {
            return String.format("recall mean %.4f min %.4f (part %.4f), error mean %.5f max %.5f (oracle set: mean "
                            + "%.5f max %.5f)", meanRecall(), minRecall(), meanPartRecall(), meanError(), maxError(),
                    mean(oracleError), Arrays.stream(oracleError).max().orElseThrow());
        }

        private static double mean(double[] values) {
            return Arrays.stream(values).average().orElseThrow();
        }
    }
}
