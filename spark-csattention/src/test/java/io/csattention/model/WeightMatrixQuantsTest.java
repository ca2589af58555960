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

    /**
     * The test quantizers ({@link GgufWriter#encode}) of the K types that model fixtures use, on ggml's own decoded
     * values (the committed .npy, whose scales span a wide range within a block): quantized again and decoded by the
     * checked decoder, each element is within half its sub-block's step s ((max - min(0, min)) / 15 for Q4_K's 32,
     * / 31 for Q5_K's; max |x| / 31 for Q6_K's 16) plus half the block's scale unit (the 6-bit or 8-bit scale of the
     * largest step, and of the largest offset for Q4_K and Q5_K), 1% for fp16 rounding.
     */
    @ParameterizedTest
    @EnumSource(value = TensorType.class, names = {"Q4_K", "Q5_K", "Q6_K"})
    void quantizersOfGgmlDecodedValuesStayWithinHalfAStep(TensorType type) throws IOException {
        float[] values = Npy.read(new java.io.ByteArrayInputStream(resource(type + ".npy")), type + ".npy").floats();
        WeightMatrix m = WeightMatrix.of(type.name(), type, ROWS, COLS,
                ByteBuffer.wrap(GgufWriter.encode(type, values)));
        boolean q6 = type == TensorType.Q6_K;
        int sub = q6 ? 16 : 32;
        int levels = type == TensorType.Q4_K ? 15 : 31;
        float[] row = new float[COLS];
        for (int r = 0; r < ROWS; r++) {
            m.row(r, row);
            for (int block = 0; block < COLS; block += 256) {
                double[] step = new double[256 / sub];
                double maxOffset = 0;
                for (int j = 0; j < step.length; j++) {
                    double min = Double.POSITIVE_INFINITY;
                    double max = Double.NEGATIVE_INFINITY;
                    for (int i = 0; i < sub; i++) {
                        min = Math.min(min, values[r * COLS + block + sub * j + i]);
                        max = Math.max(max, values[r * COLS + block + sub * j + i]);
                    }
                    step[j] = q6 ? Math.max(max, -min) / 31 : (max - Math.min(0, min)) / levels;
                    maxOffset = Math.max(maxOffset, -Math.min(0, min));
                }
                double offsetUnit = q6 ? 0 : maxOffset / 63 / levels;
                double unit = (java.util.Arrays.stream(step).max().orElseThrow() + offsetUnit) / (q6 ? 127 : 63);
                for (int e = 0; e < 256; e++) {
                    double bound = 0.5 * (step[e / sub] + offsetUnit + unit) * 1.01 + 1e-6;
                    assertEquals(values[r * COLS + block + e], row[block + e], bound, type + " row " + r + " col "
                            + (block + e));
                }
            }
        }
    }

    private static byte[] resource(String name) throws IOException {
        try (InputStream in = WeightMatrixQuantsTest.class.getResourceAsStream("/quants/" + name)) {
            return in.readAllBytes();
        }
    }
}
