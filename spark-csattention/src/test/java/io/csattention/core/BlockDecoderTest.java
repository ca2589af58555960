package io.csattention.core;

import io.csattention.baseline.AttentionMethod;
import io.csattention.kernel.Kernels;
import io.csattention.kernel.VectorKernels;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

class BlockDecoderTest {

    static final long SEED = 91L;

    static FloatMatrix uniform(SplittableRandom random, int rows, int cols) {
        float[] data = new float[rows * cols];
        for (int i = 0; i < data.length; i++) {
            data[i] = (float) (random.nextDouble() * 2 - 1);
        }
        return new FloatMatrix(rows, cols, data);
    }

    /** Any thread count and block size gives what one select + attend per query gives, query by query. */
    @ParameterizedTest
    @CsvSource({"oracle,1,8", "oracle,2,3", "quest,2,1", "csattention,2,5", "csattention,1,64"})
    void equalsSelectThenAttendPerQuery(String method, int threads, int queryBlock) {
        System.out.println("BlockDecoderTest seed=" + SEED);
        VectorKernels kernels = Kernels.preferred();
        SplittableRandom random = new SplittableRandom(SEED);
        int n = 613;
        int d = 32;
        KeyValueCache cache = KeyValueCache.of(uniform(random, n, d), uniform(random, n, d));
        FloatMatrix prefill = uniform(random, 200, d);
        FloatMatrix queries = uniform(random, 23, d);
        CSAttentionSettings settings = CSAttentionSettings.defaults().withSparsity(0.9).withCentroids(16);
        AttentionMethod attentionMethod = AttentionMethod.parse(method);
        KeySelector selector = attentionMethod.newSelector(kernels, cache, prefill, settings);
        BudgetPlan plan = attentionMethod.plan(settings, n);
        BlockDecoder.Result result;
        try (BlockDecoder decoder = new BlockDecoder(kernels, threads, queryBlock)) {
            result = decoder.decode(cache, selector, plan, queries);
        }
        assertEquals(queries.rows(), result.outputs().rows());
        float[] expected = new float[d];
        for (int i = 0; i < queries.rows(); i++) {
            int[] selected = selector.select(queries.data(), i * d, plan);
            assertArrayEquals(selected, result.selections()[i], "query " + i);
            Attention.attend(kernels, queries.data(), i * d, cache, selected, expected, 0);
            assertArrayEquals(expected, result.outputs().row(i), 0f, "query " + i);
        }
    }
}
