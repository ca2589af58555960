package io.csattention.kernel;

/**
 * IEEE 754 binary16 and bfloat16 conversions (Java 17 has neither {@code Float.float16ToFloat} nor bfloat16), in the
 * kernel package because the kernels read float16 scales and half-precision keys inline; {@code format.Half} and the
 * key-value caches call these.
 */
public final class HalfBits {

    /** The largest finite binary16 value. */
    public static final float FLOAT16_MAX = 65504f;

    private HalfBits() {
    }

    /** The float16 in the little-endian bytes {@code low}, {@code high}. */
    static float toFloat(byte low, byte high) {
        return toFloat((short) ((low & 0xFF) | (high & 0xFF) << 8));
    }

    /** The float value of the binary16 bits {@code bits}. */
    public static float toFloat(short bits) {
        int h = bits & 0xffff;
        int sign = (h & 0x8000) << 16;
        int exponent = h & 0x7c00;
        if (exponent != 0 && exponent != 0x7c00) {
            return Float.intBitsToFloat(sign | (((h & 0x7fff) << 13) + 0x38000000));
        }
        int mantissa = h & 0x3ff;
        if (exponent != 0) {
            return Float.intBitsToFloat(sign | 0x7f800000 | (mantissa << 13));
        }
        float value = mantissa * 0x1p-24f;
        return sign == 0 ? value : -value;
    }

    /** The binary16 bits nearest to {@code value} (round to nearest even; beyond the range, infinity). */
    public static short fromFloat(float value) {
        int bits = Float.floatToRawIntBits(value);
        int sign = (bits >>> 16) & 0x8000;
        int exponent = (bits >>> 23) & 0xff;
        int mantissa = bits & 0x7fffff;
        if (exponent == 0xff) {
            return (short) (sign | 0x7c00 | (mantissa != 0 ? 0x200 : 0));
        }
        int e = exponent - 127 + 15;
        if (e >= 0x1f) {
            return (short) (sign | 0x7c00);
        }
        if (e <= 0) {
            if (e < -10) {
                return (short) sign;
            }
            mantissa |= 0x800000;
            int shift = 14 - e;
            int half = mantissa >> shift;
            int remainder = mantissa & ((1 << shift) - 1);
            int halfway = 1 << (shift - 1);
            if (remainder > halfway || (remainder == halfway && (half & 1) != 0)) {
                half++;
            }
            return (short) (sign | half);
        }
        int half = (e << 10) | (mantissa >> 13);
        int remainder = mantissa & 0x1fff;
        if (remainder > 0x1000 || (remainder == 0x1000 && (half & 1) != 0)) {
            half++;
        }
        return (short) (sign | half);
    }

    /** The float value of the bfloat16 bits {@code bits}. */
    public static float bfloat16ToFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xffff) << 16);
    }

    /** The bfloat16 bits nearest to {@code value} (round to nearest even; a NaN stays a quiet NaN). */
    public static short bfloat16FromFloat(float value) {
        int bits = Float.floatToRawIntBits(value);
        if ((bits & 0x7fffffff) > 0x7f800000) {
            return (short) ((bits >>> 16) | 0x40);
        }
        return (short) ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16);
    }
}
