package io.csattention.format;

import io.csattention.kernel.HalfBits;

/** IEEE 754 binary16 and bfloat16 conversions for the file formats; the implementation is {@link HalfBits}'. */
public final class Half {

    private Half() {
    }

    /** The float value of the binary16 bits {@code bits}. */
    public static float toFloat(short bits) {
        return HalfBits.toFloat(bits);
    }

    /** The binary16 bits nearest to {@code value} (round to nearest even). */
    public static short fromFloat(float value) {
        return HalfBits.fromFloat(value);
    }

    /** The float value of the bfloat16 bits {@code bits}. */
    public static float bfloat16ToFloat(short bits) {
        return HalfBits.bfloat16ToFloat(bits);
    }
}
