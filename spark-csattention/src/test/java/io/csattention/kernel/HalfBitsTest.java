package io.csattention.kernel;

import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The half-precision conversions against definitions computed in double, not through the code under test. */
class HalfBitsTest {

    /** binary16 by its definition: sign, 5 exponent bits (bias 15), 10 mantissa bits, subnormals below 2^-14. */
    private static double float16Value(int h) {
        int sign = (h >> 15) & 1;
        int exponent = (h >> 10) & 0x1f;
        int mantissa = h & 0x3ff;
        double magnitude = exponent == 0 ? mantissa * Math.pow(2, -24)
                : exponent == 0x1f ? (mantissa == 0 ? Double.POSITIVE_INFINITY : Double.NaN)
                : Math.pow(2, exponent - 15) * (1 + mantissa / 1024.0);
        return sign == 1 ? -magnitude : magnitude;
    }

    @Test
    void everyFloat16DecodesToItsValue() {
        for (int h = 0; h < 1 << 16; h++) {
            double expected = float16Value(h);
            float fromShort = HalfBits.toFloat((short) h);
            float fromBytes = HalfBits.toFloat((byte) h, (byte) (h >> 8));
            if (Double.isNaN(expected)) {
                assertTrue(Float.isNaN(fromShort) && Float.isNaN(fromBytes), "bits " + h);
            } else {
                assertEquals(expected, fromShort, 0.0, "bits " + h);
                assertEquals(Float.floatToRawIntBits(fromShort), Float.floatToRawIntBits(fromBytes), "bits " + h);
                assertEquals(h >> 15, Float.floatToRawIntBits(fromShort) >>> 31, "sign of bits " + h);
            }
        }
    }

    @Test
    void everyFiniteFloat16RoundTrips() {
        for (int h = 0; h < 1 << 16; h++) {
            if (((h >> 10) & 0x1f) != 0x1f) {
                assertEquals((short) h, HalfBits.fromFloat(HalfBits.toFloat((short) h)), "bits " + h);
            }
        }
    }

    /** The nearest binary16 by search over all finite values, ties to the even mantissa; infinity past the range. */
    private static double nearestFloat16(double x) {
        double best = Double.NaN;
        int bestBits = 0;
        for (int h = 0; h < 0x7c00; h++) {
            double v = x < 0 ? -float16Value(h) : float16Value(h);
            double distance = Math.abs(v - x);
            double bestDistance = Math.abs(best - x);
            if (Double.isNaN(best) || distance < bestDistance || (distance == bestDistance && (h & 1) == 0)) {
                best = v;
                bestBits = h;
            }
        }
        // past the largest finite value by half an ulp (2^4) or more, IEEE rounds to infinity
        if (Math.abs(x) >= 65504 + 16) {
            return x < 0 ? Double.NEGATIVE_INFINITY : Double.POSITIVE_INFINITY;
        }
        return best;
    }

    @Test
    void floatsRoundToTheNearestFloat16() {
        SplittableRandom random = new SplittableRandom(11);
        float[] edges = {0f, -0f, 1f, 65504f, 65519.99f, 65520f, -65520f, 6.1035156e-5f, 5.9604645e-8f,
                2.9802322e-8f, 2.9802326e-8f, 1.0004883f, 1.0014648f};
        for (float x : edges) {
            assertEquals(nearestFloat16(x), HalfBits.toFloat(HalfBits.fromFloat(x)), 0.0, "x=" + x);
        }
        for (int i = 0; i < 300; i++) {
            float x = (float) ((random.nextBoolean() ? -1 : 1) * Math.pow(2, random.nextDouble(-26, 17)));
            assertEquals(nearestFloat16(x), HalfBits.toFloat(HalfBits.fromFloat(x)), 0.0, "x=" + x);
        }
    }

    @Test
    void floatsRoundToTheNearestBfloat16() {
        SplittableRandom random = new SplittableRandom(12);
        for (int i = 0; i < 20000; i++) {
            float x = Float.intBitsToFloat(random.nextInt()) ;
            if (!Float.isFinite(x)) {
                continue;
            }
            int bits = Float.floatToRawIntBits(x);
            // the two bfloat16 neighbours of x: truncated, and truncated plus one unit
            double down = Float.intBitsToFloat(bits & 0xffff0000);
            double up = Float.intBitsToFloat((bits & 0xffff0000) + 0x10000);
            double below = Math.abs(x - down);
            double above = Math.abs(up - x);
            double expected = below < above ? down : above < below ? up
                    : ((bits >>> 16) & 1) == 0 ? down : up;
            assertEquals(expected, HalfBits.bfloat16ToFloat(HalfBits.bfloat16FromFloat(x)), 0.0, "x=" + x);
        }
        assertTrue(Float.isNaN(HalfBits.bfloat16ToFloat(HalfBits.bfloat16FromFloat(Float.NaN))));
    }

    @Test
    void everyKernelWidensAllHalfValuesAsTheDefinitionAtAnyOffsetAndLength() {
        short[] all = new short[(1 << 16) + 7];
        for (int i = 0; i < all.length; i++) {
            all[i] = (short) (i - 3);
        }
        java.util.List<VectorKernels> kernels = new java.util.ArrayList<>();
        kernels.add(ScalarKernels.INSTANCE);
        Kernels.simd().ifPresent(kernels::add);
        for (VectorKernels k : kernels) {
            for (boolean brain : new boolean[]{false, true}) {
                for (int off : new int[]{0, 3}) {
                    for (int length : new int[]{1 << 16, 1, 7, 8, 15, 33}) {
                        float[] out = new float[length + 2];
                        k.halfToFloat(all, off, out, 2, length, brain);
                        for (int i = 0; i < length; i++) {
                            int bits = all[off + i] & 0xffff;
                            double expected = brain ? Float.intBitsToFloat(bits << 16) : float16Value(bits);
                            String where = k.getClass().getSimpleName() + " brain=" + brain + " bits=" + bits;
                            if (Double.isNaN(expected)) {
                                assertTrue(Float.isNaN(out[2 + i]), where);
                            } else {
                                assertEquals(expected, out[2 + i], 0.0, where);
                                assertEquals(bits >> 15, Float.floatToRawIntBits(out[2 + i]) >>> 31, where);
                            }
                        }
                        assertEquals(0f, out[0]);
                        assertEquals(0f, out[1]);
                    }
                }
            }
        }
    }
}
