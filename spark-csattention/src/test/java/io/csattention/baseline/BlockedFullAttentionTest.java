package io.csattention.baseline;

import io.csattention.core.Attention;
import io.csattention.core.FloatMatrix;
import io.csattention.core.KeyValueCache;
import io.csattention.kernel.Kernels;
import io.csattention.kernel.ScalarKernels;
import io.csattention.kernel.VectorKernels;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.SplittableRandom;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class BlockedFullAttentionTest {

    static final long SEED = 77L;

    static FloatMatrix gaussian(SplittableRandom random, int rows, int cols, double scale) {
        float[] data = new float[rows * cols];
        for (int i = 0; i < data.length; i++) {
            data[i] = (float) (scale * nextGaussian(random));
        }
        return new FloatMatrix(rows, cols, data);
    }

    static double nextGaussian(SplittableRandom random) {
        double u = Math.max(1e-12, random.nextDouble());
        return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random.nextDouble());
    }

    /**
     * Odd shapes (keys not a multiple of the key tile, queries not a multiple of the 4-query register tile, d not a
     * multiple of the vector width) against Attention.attend over every key, scalar and SIMD, one and two threads.
     * Tolerance 2e-5 absolute on outputs of magnitude about 1 (float reassociation over up to 1031 terms).
     */
    @ParameterizedTest
    @CsvSource({"scalar,1,1031,24,7,5,64", "simd,1,1031,24,7,5,64", "simd,2,1031,24,7,5,64",
            "simd,2,777,128,19,16,256", "simd,1,5,8,3,2,4", "scalar,2,300,33,9,4,100"})
    void equalsAttentionOverAllKeys(String backend, int threads, int n, int d, int m, int queryBlock,
                                    int keyBlock) {
        System.out.println("BlockedFullAttentionTest seed=" + SEED);
        VectorKernels kernels = backend.equals("scalar") ? ScalarKernels.INSTANCE : Kernels.simd().orElseThrow();
        SplittableRandom random = new SplittableRandom(SEED + n);
        // scale 3 gives peaked softmaxes so the running-max rescaling is exercised
        KeyValueCache cache = KeyValueCache.of(gaussian(random, n, d, 3), gaussian(random, n, d, 1));
        FloatMatrix queries = gaussian(random, m, d, 1);
        FloatMatrix actual;
        try (BlockedFullAttention full = new BlockedFullAttention(kernels, threads, queryBlock, keyBlock)) {
            actual = full.attend(cache, queries);
        }
        int[] all = IntStream.range(0, n).toArray();
        float[] expected = new float[d];
        for (int i = 0; i < m; i++) {
            Attention.attend(ScalarKernels.INSTANCE, queries.data(), i * d, cache, all, expected, 0);
            for (int c = 0; c < d; c++) {
                assertEquals(expected[c], actual.get(i, c), 2e-5, "query " + i + " dim " + c);
            }
        }
    }

    @org.junit.jupiter.api.Test
    void rejectsBadSizes() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new BlockedFullAttention(ScalarKernels.INSTANCE, 0, 16, 256));
        assertEquals("threads, query-block and key-block must be > 0; threads=0, query-block=16, key-block=256",
                e.getMessage());
    }
}
