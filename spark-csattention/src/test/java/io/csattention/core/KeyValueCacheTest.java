package io.csattention.core;

import io.csattention.kernel.Kernels;
import io.csattention.kernel.ScalarKernels;
import io.csattention.kernel.VectorKernels;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The half-precision KV cache at a long-context size (32K keys, d = 64): every product of a float16/bfloat16 cache
 * gives the same bits as a float32 cache holding the rounded rows, the rounding is to the nearest half value (checked
 * against float64 bounds, not through the code under test), and attention over it stays within the half format's
 * error of the float64 reference.
 */
class KeyValueCacheTest {

    private static final int N = 32_768;
    private static final int D = 64;

    /** The scalar kernels and, where this machine has them, the SIMD ones. */
    static List<VectorKernels> kernels() {
        List<VectorKernels> all = new ArrayList<>();
        all.add(ScalarKernels.INSTANCE);
        Kernels.simd().ifPresent(all::add);
        return all;
    }

    /** Gaussian query values of standard deviation 2 (peaked softmaxes over unit Gaussian keys). */
    private static float[] queries(int length, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        float[] q = new float[length];
        for (int i = 0; i < q.length; i++) {
            q[i] = (float) (2 * random.nextGaussian());
        }
        return q;
    }

    private static KeyValueCache half(FloatMatrix keys, FloatMatrix values, KeyValueCache.Precision precision) {
        return KeyValueCache.of(keys, values, precision);
    }

    @Test
    void halfRowsAreTheNearestHalfValues() {
        FloatMatrix keys = TestData.gaussian(4096, D, 11);
        FloatMatrix values = TestData.gaussian(4096, D, 12);
        for (KeyValueCache.Precision p : new KeyValueCache.Precision[]{KeyValueCache.Precision.F16,
                KeyValueCache.Precision.BF16}) {
            float[] rounded = half(keys, values, p).keyMatrix().data();
            // unit roundoff of the format: 2^-11 (float16, 11 significant bits), 2^-8 (bfloat16, 8 bits)
            double u = p == KeyValueCache.Precision.F16 ? 0x1p-11 : 0x1p-8;
            int changed = 0;
            for (int i = 0; i < rounded.length; i++) {
                double x = keys.data()[i];
                double err = Math.abs(rounded[i] - x);
                // float16 below 2^-14 is subnormal: steps of 2^-24, half a step of error
                boolean subnormal = p == KeyValueCache.Precision.F16 && Math.abs(x) < 0x1p-14;
                double bound = subnormal ? 0x1p-25 : u * Math.abs(x);
                assertTrue(err <= bound * (1 + 1e-12), p + " key " + i + ": " + x + " -> " + rounded[i]);
                if (rounded[i] != keys.data()[i]) {
                    changed++;
                }
            }
            // gaussian floats have 24 significant bits: nearly all change when rounded; a cache that kept float32
            // (or rounded one row only) would fail here
            assertTrue(changed > rounded.length * 9 / 10, p + ": only " + changed + " of " + rounded.length
                    + " values were rounded");
        }
    }

    @Test
    void halfProductsMatchFloat32OfTheRoundedRowsBitForBit() {
        FloatMatrix keys = TestData.gaussian(N, D, 21);
        FloatMatrix values = TestData.gaussian(N, D, 22);
        SplittableRandom random = new SplittableRandom(23);
        float[] q = new float[D + 3];
        for (int i = 0; i < q.length; i++) {
            q[i] = (float) random.nextGaussian();
        }
        int[] ids = sampleIds(random, N, N / 20);
        float[] weights = new float[ids.length];
        for (int i = 0; i < weights.length; i++) {
            weights[i] = (float) random.nextDouble();
        }
        for (KeyValueCache.Precision p : new KeyValueCache.Precision[]{KeyValueCache.Precision.F16,
                KeyValueCache.Precision.BF16}) {
            KeyValueCache h = half(keys, values, p);
            KeyValueCache f = KeyValueCache.of(h.keyMatrix(), h.valueMatrix());
            assertEquals(KeyValueCache.Precision.F32, f.precision());
            for (VectorKernels k : kernels()) {
                String where = p + " " + k.getClass().getSimpleName();
                int from = 37;
                int count = N - 101; // not a multiple of the 64-row chunk
                float[] a = new float[count + 2];
                float[] b = new float[count + 2];
                h.dotKeys(k, q, 3, from, count, a, 2);
                f.dotKeys(k, q, 3, from, count, b, 2);
                assertArrayEquals(b, a, where + " dotKeys");

                float[] wa = Arrays.copyOf(weights, count);
                for (int i = weights.length; i < count; i++) {
                    wa[i] = (float) ((i % 97) / 97.0);
                }
                float[] oa = new float[D + 5];
                float[] ob = new float[D + 5];
                h.addValues(k, wa, 0, from, count, oa, 5);
                f.addValues(k, wa, 0, from, count, ob, 5);
                assertArrayEquals(ob, oa, where + " addValues");

                float[] sa = new float[ids.length];
                float[] sb = new float[ids.length];
                h.dotSelectedKeys(k, q, 3, ids, ids.length, sa);
                f.dotSelectedKeys(k, q, 3, ids, ids.length, sb);
                assertArrayEquals(sb, sa, where + " dotSelectedKeys");

                float[] va = new float[D + 1];
                float[] vb = new float[D + 1];
                h.sumSelectedValues(k, weights, ids, ids.length, va, 1);
                f.sumSelectedValues(k, weights, ids, ids.length, vb, 1);
                assertArrayEquals(vb, va, where + " sumSelectedValues");

                float[] xa = new float[D];
                float[] xb = new float[D];
                assertEquals(ids.length, Attention.attend(k, q, 3, h, ids, xa, 0));
                Attention.attend(k, q, 3, f, ids, xb, 0);
                assertArrayEquals(xb, xa, where + " Attention.attend");
            }
        }
    }

    @Test
    void attentionOverAHalfCacheStaysWithinTheFormatsErrorOfFloat64() {
        FloatMatrix keys = TestData.gaussian(N, D, 31);
        FloatMatrix values = TestData.gaussian(N, D, 32);
        SplittableRandom random = new SplittableRandom(33);
        float[] q = new float[D];
        for (int i = 0; i < D; i++) {
            q[i] = (float) (3 * random.nextGaussian()); // peaked softmax: errors in scores show
        }
        int[] ids = sampleIds(random, N, N / 20);
        double[] exact = ExactReference.attend(ExactReference.scores(q, 0, keys.data(), N, D), ids,
                values.data(), D);
        VectorKernels k = Kernels.preferred();
        double[] errors = new double[3];
        KeyValueCache.Precision[] all = {KeyValueCache.Precision.F32, KeyValueCache.Precision.F16,
                KeyValueCache.Precision.BF16};
        for (int i = 0; i < all.length; i++) {
            float[] out = new float[D];
            Attention.attend(k, q, 0, half(keys, values, all[i]), ids, out, 0);
            errors[i] = ExactReference.relativeError(out, 0, exact);
        }
        assertTrue(errors[0] < 1e-5, "f32 error " + errors[0]);
        assertTrue(errors[1] < 5e-3, "f16 error " + errors[1]);
        assertTrue(errors[2] < 4e-2, "bf16 error " + errors[2]);
        // the half caches really are half: their error is well above float32's
        assertTrue(errors[1] > 10 * errors[0], Arrays.toString(errors));
        assertTrue(errors[2] > errors[1], Arrays.toString(errors));
    }

    /**
     * Grouped-query exact attention (4 query heads on one KV head, 32K keys + 37, not a multiple of the chunk): each
     * head within float32's error (3e-5 at 32K keys: sums of 32K exp terms in float) of float64 attention over the
     * keys as stored, and
     * each head's bits independent of the other heads of its group.
     */
    @Test
    void groupAttentionIsExactPerHeadAndIndependentOfItsNeighbours() {
        int n = N + 37;
        int group = 4;
        FloatMatrix keys = TestData.gaussian(n, D, 51);
        FloatMatrix values = TestData.gaussian(n, D, 52);
        float[] q = queries((group + 1) * D, 53);
        for (KeyValueCache.Precision p : KeyValueCache.Precision.values()) {
            KeyValueCache cache = half(keys, values, p);
            // the reference attends the keys as stored (rounded for half caches), in float64
            float[] stored = cache.keyMatrix().data();
            float[] storedValues = cache.valueMatrix().data();
            for (VectorKernels k : kernels()) {
                float[] out = new float[group * D];
                Attention.attendGroup(k, q, 0, group, cache, n, out, 0);
                float[] shifted = new float[group * D];
                Attention.attendGroup(k, q, D, group, cache, n, shifted, 0); // the same heads one place earlier
                float[] other = q.clone();
                other[0] += 1f; // head 0 changes; heads 1-3 must not
                float[] neighbours = new float[group * D];
                Attention.attendGroup(k, other, 0, group, cache, n, neighbours, 0);
                for (int g = 0; g < group; g++) {
                    double[] exact = ExactReference.attendAll(ExactReference.scores(q, g * D, stored, n, D),
                            storedValues, D);
                    double error = ExactReference.relativeError(out, g * D, exact);
                    assertTrue(error < 3e-5, p + " " + k.getClass().getSimpleName() + " head " + g + ": " + error);
                    if (g > 0) {
                        assertArrayEquals(Arrays.copyOfRange(out, g * D, (g + 1) * D),
                                Arrays.copyOfRange(neighbours, g * D, (g + 1) * D), p + " head " + g);
                    }
                }
                double moved = ExactReference.relativeError(shifted, 0, ExactReference.attendAll(
                        ExactReference.scores(q, D, stored, n, D), storedValues, D));
                assertTrue(moved < 3e-5, p + " shifted: " + moved);
            }
        }
    }

    /**
     * The prefill's causal tile ({@link Attention#attendCausal}): every token's every head within float32's error of
     * float64 attention over exactly its prefix (a long one crossing every chunk boundary up to 32K + 37 keys, and
     * short ones from the first key, where one key too many or too few is far outside the bound), and the same bits
     * whether the tokens are attended in one tile or split in two.
     */
    @Test
    void causalTileAttendsEachTokensPrefixExactlyWhateverTheSplit() {
        int n = N + 37;
        int group = 4;
        int tokens = 16;
        int stride = 2 * group * D + 3; // the token's row also holds another KV head's queries
        FloatMatrix keys = TestData.gaussian(n, D, 61);
        FloatMatrix values = TestData.gaussian(n, D, 62);
        float[] q = queries(5 + tokens * stride, 63);
        for (KeyValueCache.Precision p : KeyValueCache.Precision.values()) {
            KeyValueCache cache = half(keys, values, p);
            float[] stored = cache.keyMatrix().data();
            float[] storedValues = cache.valueMatrix().data();
            for (VectorKernels k : kernels()) {
                for (int first : new int[] {1, n - tokens + 1}) {
                    float[] out = new float[q.length];
                    Attention.attendCausal(k, q, 5, stride, tokens, group, cache, first, out, 5);
                    float[] split = new float[q.length];
                    Attention.attendCausal(k, q, 5, stride, 5, group, cache, first, split, 5);
                    Attention.attendCausal(k, q, 5 + 5 * stride, stride, tokens - 5, group, cache, first + 5, split,
                            5 + 5 * stride);
                    assertArrayEquals(out, split, p + " " + k.name() + " first=" + first + ": split in two");
                    for (int t = 0; t < tokens; t++) {
                        for (int g = 0; g < group; g++) {
                            int off = 5 + t * stride + g * D;
                            double[] exact = ExactReference.attendAll(
                                    ExactReference.scores(q, off, stored, first + t, D), storedValues, D);
                            double error = ExactReference.relativeError(out, off, exact);
                            assertTrue(error < 3e-5, p + " " + k.name() + " first=" + first + " token " + t
                                    + " head " + g + ": " + error);
                        }
                    }
                }
            }
        }
    }

    @Test
    void float16RefusesFiniteValuesBeyondItsRangeInOneLine() {
        KeyValueCache cache = new KeyValueCache(4, 2, KeyValueCache.Precision.F16);
        float[] ok = {1, 2, 3, 4};
        cache.append(ok, 0, ok, 0);
        float[] big = {1, 70000f, 3, 4};
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> cache.append(big, 0, ok, 0));
        assertEquals("key 1 dimension 1 is 70000.0, beyond float16's range (|x| <= 65504.0); use KV precision bf16"
                + " or f32", e.getMessage());
        assertEquals(1, cache.size(), "nothing half-appended");
        KeyValueCache brain = new KeyValueCache(4, 2, KeyValueCache.Precision.BF16);
        brain.append(big, 0, ok, 0);
        assertEquals(70144f, brain.keyMatrix().data()[1]); // bfloat16 nearest to 70000
    }

    @Test
    void bytesCopiesAndAccessors() {
        FloatMatrix keys = TestData.gaussian(100, 16, 41);
        FloatMatrix values = TestData.gaussian(100, 16, 42);
        KeyValueCache h = half(keys, values, KeyValueCache.Precision.F16);
        assertEquals(2L * 100 * 16 * 2, h.bytes());
        assertEquals(2L * 100 * 16 * 4, KeyValueCache.of(keys, values).bytes());
        KeyValueCache copy = h.copy();
        copy.append(keys.data(), 0, values.data(), 0);
        assertEquals(100, h.size());
        assertEquals(101, copy.size());
        assertArrayEquals(h.keyMatrix().data(), Arrays.copyOf(copy.keyMatrix().data(), 100 * 16));
        assertArrayEquals(h.valueMatrix().data(), Arrays.copyOf(copy.valueMatrix().data(), 100 * 16));
        IllegalStateException e = assertThrows(IllegalStateException.class, h::keys);
        assertTrue(e.getMessage().startsWith("this KV cache stores f16 rows"), e.getMessage());
        assertEquals(KeyValueCache.Precision.BF16, KeyValueCache.Precision.parse(" BF16"));
        IllegalArgumentException bad = assertThrows(IllegalArgumentException.class,
                () -> KeyValueCache.Precision.parse("fp8"));
        assertEquals("unknown KV precision 'fp8'; expected one of f32, f16, bf16", bad.getMessage());
    }

    private static int[] sampleIds(SplittableRandom random, int n, int count) {
        boolean[] taken = new boolean[n];
        int[] ids = new int[count];
        int at = 0;
        while (at < count) {
            int id = random.nextInt(n);
            if (!taken[id]) {
                taken[id] = true;
                ids[at++] = id;
            }
        }
        Arrays.sort(ids);
        return ids;
    }
}
