package io.csattention.kernel;

import io.csattention.format.Half;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

class HalfBitsTest {

    @Test
    void everyFloat16ConvertsAsHalfDoes() {
        for (int h = 0; h < 1 << 16; h++) {
            assertEquals(Float.floatToRawIntBits(Half.toFloat((short) h)),
                    Float.floatToRawIntBits(HalfBits.toFloat((byte) h, (byte) (h >> 8))), "bits " + h);
        }
    }
}
