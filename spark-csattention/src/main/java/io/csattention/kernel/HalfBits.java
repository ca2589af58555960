package io.csattention.kernel;

/**
 * float16 to float32 for the kernels that read Q8_0 scales inline. The kernel package sits below {@code format}
 * (whose {@code Half} is the project's converter; {@code HalfBitsTest} holds the two equal on every one of the 65536
 * values), so it keeps this copy rather than depend upwards.
 */
final class HalfBits {

    private HalfBits() {
    }

    /** The float16 in the little-endian bytes {@code low}, {@code high}. */
    static float toFloat(byte low, byte high) {
        int h = (low & 0xFF) | (high & 0xFF) << 8;
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
}
