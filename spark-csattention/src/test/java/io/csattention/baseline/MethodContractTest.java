package io.csattention.baseline;

import io.csattention.core.Attention;
import io.csattention.core.BudgetPlan;
import io.csattention.core.CSAttentionSettings;
import io.csattention.core.FloatMatrix;
import io.csattention.core.KeySelector;
import io.csattention.core.KeyValueCache;
import io.csattention.core.TestData;
import io.csattention.kernel.Kernels;
import io.csattention.kernel.VectorKernels;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Properties every method shares, run against each one on the same data. */
class MethodContractTest {

    private static final long SEED = 11L;
    private static final VectorKernels KERNELS = Kernels.preferred();

    @ParameterizedTest
    @EnumSource(AttentionMethod.class)
    void atABudgetOfEveryKeyEveryMethodEqualsFull(AttentionMethod method) {
        int n = 257;
        int d = 16;
        FloatMatrix keys = TestData.gaussian(n, d, SEED);
        FloatMatrix values = TestData.gaussian(n, d, SEED + 1);
        FloatMatrix queries = TestData.gaussian(7, d, SEED + 2);
        CSAttentionSettings settings = CSAttentionSettings.defaults().withSparsity(1e-6).withSink(0).withWindow(0);
        KeyValueCache cache = KeyValueCache.of(keys, values);
        KeySelector selector = method.newSelector(KERNELS, cache, queries, settings);
        KeySelector full = AttentionMethod.FULL.newSelector(KERNELS, cache, queries, settings);
        BudgetPlan plan = method.plan(settings, n);
        assertEquals(n, plan.budget());
        for (int q = 0; q < queries.rows(); q++) {
            float[] expected = new float[d];
            float[] actual = new float[d];
            Attention.attend(KERNELS, queries.data(), q * d, cache, full.select(queries.data(), q * d,
                    BudgetPlan.all(n)), expected, 0);
            int[] selected = selector.select(queries.data(), q * d, plan);
            assertArrayEquals(java.util.stream.IntStream.range(0, n).toArray(), selected, method + " seed " + SEED);
            Attention.attend(KERNELS, queries.data(), q * d, cache, selected, actual, 0);
            assertArrayEquals(expected, actual, 1e-5f, method + " seed " + SEED);
        }
    }

    @ParameterizedTest
    @EnumSource(value = AttentionMethod.class, names = "FULL", mode = EnumSource.Mode.EXCLUDE)
    void selectionsAreAscendingWithinTheBudgetAndKeepSinkAndWindow(AttentionMethod method) {
        int n = 1031;
        int d = 32;
        FloatMatrix keys = TestData.gaussian(n, d, SEED);
        FloatMatrix values = TestData.gaussian(n, d, SEED + 1);
        FloatMatrix prefill = TestData.gaussian(n, d, SEED + 3);
        FloatMatrix queries = TestData.gaussian(5, d, SEED + 2);
        CSAttentionSettings settings = CSAttentionSettings.defaults().withSparsity(0.9).withSink(3).withWindow(7);
        KeyValueCache cache = KeyValueCache.of(keys, values);
        KeySelector selector = method.newSelector(KERNELS, cache, prefill, settings);
        BudgetPlan plan = method.plan(settings, n);
        for (int q = 0; q < queries.rows(); q++) {
            int[] selected = selector.select(queries.data(), q * d, plan);
            assertEquals(plan.budget(), selected.length);
            int[] real = Arrays.stream(selected).filter(i -> i >= 0).toArray();
            assertEquals(plan.budget(), real.length, method + " attends the whole budget; seed " + SEED);
            for (int i = 1; i < real.length; i++) {
                assertTrue(real[i] > real[i - 1], method + " ascending and distinct at " + i);
            }
            assertEquals(0, real[0]);
            assertEquals(2, real[2]);
            assertEquals(n - 1, real[real.length - 1]);
            assertEquals(n - 7, real[real.length - 7]);
        }
    }
}
