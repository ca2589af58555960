package io.csattention.model;

import io.csattention.format.Npy;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every quantized tensor type decodes as ggml does: seeded random blocks and their dequantization by the
 * independent {@code gguf} Python package, committed under src/test/resources/quants (see generate.py there).
 */
class WeightMatrixQuantsTest {

    private static final int ROWS = 2;
    private static final int COLS = 512;

    @ParameterizedTest
    @EnumSource(value = TensorType.class, names = {"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K"})
    void decodesLikeGgml(TensorType type) throws IOException {
        byte[] raw = resource(type + ".bin");
        assertEquals(type.bytes((long) ROWS * COLS), raw.length);
        {
            float[] expected = Npy.read(new java.io.ByteArrayInputStream(resource(type + ".npy")), type + ".npy")
                    .floats();
            WeightMatrix m = WeightMatrix.of(type.name(), type, ROWS, COLS, ByteBuffer.wrap(raw));
            float[] row = new float[COLS];
            double worst = 0;
            for (int r = 0; r < ROWS; r++) {
                m.row(r, row);
                for (int j = 0; j < COLS; j++) {
                    float e = expected[r * COLS + j];
                    double diff = Math.abs(row[j] - e);
                    worst = Math.max(worst, diff / Math.max(1, Math.abs(e)));
                    assertTrue(diff <= 1e-6 * Math.max(1, Math.abs(e)),
                            type + " row " + r + " col " + j + ": " + row[j] + " vs ggml " + e);
                }
            }
            System.out.printf("%s: worst relative difference to ggml %.2g%n", type, worst);
        }
    }

    private static byte[] resource(String name) throws IOException {
        try (InputStream in = WeightMatrixQuantsTest.class.getResourceAsStream("/quants/" + name)) {
            return in.readAllBytes();
        }
    }
}
