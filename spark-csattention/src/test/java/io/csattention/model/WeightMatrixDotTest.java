package io.csattention.model;

import io.csattention.format.Half;
import io.csattention.format.Npy;
import io.csattention.kernel.Kernels;
import io.csattention.kernel.ScalarKernels;
import io.csattention.kernel.VectorKernels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The fused dot product of a quantized row ({@link WeightMatrix#dot}, dequantized in registers) against a float64
 * reference over the values the independent {@code gguf} package dequantizes the same blocks to (the fixtures of
 * {@link WeightMatrixQuantsTest}), on every block count the fixture allows (one block, odd counts, the whole row),
 * with the scalar kernels and with the SIMD kernels when this JVM has them.
 */
class WeightMatrixDotTest {

    private static final long SEED = 20261202L;
    private static final int ELEMENTS = 1024;

    private static List<VectorKernels> kernels() {
        List<VectorKernels> all = new ArrayList<>();
        all.add(ScalarKernels.INSTANCE);
        Kernels.simd().ifPresent(all::add);
        return all;
    }

    @ParameterizedTest
    @EnumSource(value = TensorType.class, names = {"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K"})
    void quantizedRowsDotLikeTheirDequantizedValuesInFloat64(TensorType type) throws IOException {
        System.out.println("WeightMatrixDotTest seed=" + SEED);
        byte[] raw = resource(type + ".bin");
        float[] values = Npy.read(new java.io.ByteArrayInputStream(resource(type + ".npy")), type + ".npy").floats();
        SplittableRandom random = new SplittableRandom(SEED);
        float[] x = new float[ELEMENTS + 3];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) random.nextGaussian();
        }
        int block = type.blockSize();
        double worst = 0;
        for (int blocks = 1; blocks * block <= ELEMENTS; blocks += blocks < 3 ? 1 : 2) {
            int cols = blocks * block;
            int rows = ELEMENTS / cols;
            WeightMatrix m = WeightMatrix.of(type.name(), type, rows, cols, ByteBuffer.wrap(raw));
            for (VectorKernels k : kernels()) {
                WeightMatrix.Scratch scratch = new WeightMatrix.Scratch();
                for (int xOff : new int[] {0, 3}) {
                    for (int r = 0; r < rows; r++) {
                        double exact = 0;
                        double magnitude = 0;
                        for (int j = 0; j < cols; j++) {
                            exact += (double) values[r * cols + j] * x[xOff + j];
                            magnitude += Math.abs((double) values[r * cols + j] * x[xOff + j]);
                        }
                        float dot = m.dot(r, x, xOff, k, scratch);
                        double error = Math.abs(dot - exact) / magnitude;
                        worst = Math.max(worst, error);
                        // float32 accumulation over at most 1024 terms: a few units of 2^-24 times sqrt(terms)
                        assertTrue(error <= 2e-6, type + " " + k.name() + " cols=" + cols + " row " + r + " xOff="
                                + xOff + ": " + dot + " vs float64 " + exact);
                        assertEquals(Float.floatToIntBits(dot), Float.floatToIntBits(m.dot(r, x, xOff, k, scratch)),
                                "the same bits on a second call");
                    }
                }
            }
        }
        System.out.printf("%s: worst relative error of the fused dot %.2g (kernels %s)%n", type, worst,
                kernels().stream().map(VectorKernels::name).toList());
    }

    @Test
    void halfPrecisionRowsDotTheirExactValues() {
        SplittableRandom random = new SplittableRandom(SEED);
        int rows = 3;
        int cols = 67;
        float[] v = new float[rows * cols];
        ByteBuffer f16 = ByteBuffer.allocate(2 * v.length).order(ByteOrder.LITTLE_ENDIAN);
        ByteBuffer bf16 = ByteBuffer.allocate(2 * v.length).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < v.length; i++) {
            // k / 64 with |k| < 128: exact in float16 and in bfloat16
            v[i] = (random.nextInt(255) - 127) / 64f;
            f16.putShort(Half.fromFloat(v[i]));
            bf16.putShort((short) (Float.floatToIntBits(v[i]) >>> 16));
        }
        float[] x = new float[cols];
        for (int i = 0; i < cols; i++) {
            x[i] = (float) random.nextGaussian();
        }
        for (TensorType type : new TensorType[] {TensorType.F16, TensorType.BF16}) {
            WeightMatrix m = WeightMatrix.of(type.name(), type, rows, cols, (type == TensorType.F16 ? f16 : bf16)
                    .flip());
            for (VectorKernels k : kernels()) {
                for (int r = 0; r < rows; r++) {
                    double exact = 0;
                    double magnitude = 0;
                    for (int j = 0; j < cols; j++) {
                        exact += (double) v[r * cols + j] * x[j];
                        magnitude += Math.abs((double) v[r * cols + j] * x[j]);
                    }
                    float dot = m.dot(r, x, 0, k, new WeightMatrix.Scratch());
                    assertTrue(Math.abs(dot - exact) <= 2e-6 * magnitude, type + " " + k.name() + " row " + r + ": "
                            + dot + " vs " + exact);
                }
            }
        }
    }

    /**
     * Q4_K (codes with offsets), Q8_0 (read in place, scales inline for fewer than four tokens, widened for four or
     * more) and Q6_K (blocks of 16): one token, five tokens in one product, and each row's own dot agree bit for bit.
     */
    @ParameterizedTest
    @EnumSource(value = TensorType.class, names = {"Q4_K", "Q8_0", "Q6_K"})
    void aMatrixProductGivesTheSameBitsWhateverTheThreadsAndTokens(TensorType type) throws IOException {
        byte[] raw = resource(type + ".bin");
        // 1024 elements as 4 rows of 256, repeated to 512 rows so that the product is split across threads
        int rows = 512;
        int cols = 256;
        int rowBytes = (int) type.bytes(cols);
        byte[] big = new byte[rows * rowBytes];
        for (int r = 0; r < rows; r++) {
            System.arraycopy(raw, (r % 4) * rowBytes, big, r * rowBytes, rowBytes);
        }
        WeightMatrix m = WeightMatrix.of("w", type, rows, cols, ByteBuffer.wrap(big));
        SplittableRandom random = new SplittableRandom(SEED);
        float[] x = new float[cols];
        for (int i = 0; i < cols; i++) {
            x[i] = (float) random.nextGaussian();
        }
        LlamaModel model = Stories260K.model();
        float[] parallel = new float[rows];
        model.matmul(m, x, 1, parallel);
        WeightMatrix.Scratch scratch = new WeightMatrix.Scratch();
        for (int r = 0; r < rows; r++) {
            assertEquals(Float.floatToIntBits(m.dot(r, x, 0, model.kernels(), scratch)),
                    Float.floatToIntBits(parallel[r]), "row " + r);
        }
        // five tokens in one product (prefill, a batch of sequences): each token's outputs as if alone
        float[] three = new float[5 * cols];
        for (int i = 0; i < three.length; i++) {
            three[i] = (float) random.nextGaussian();
        }
        float[] together = new float[5 * rows];
        model.matmul(m, three, 5, together);
        for (int t = 0; t < 5; t++) {
            float[] alone = new float[rows];
            model.matmul(m, java.util.Arrays.copyOfRange(three, t * cols, (t + 1) * cols), 1, alone);
            for (int r = 0; r < rows; r++) {
                assertEquals(Float.floatToIntBits(alone[r]), Float.floatToIntBits(together[t * rows + r]),
                        "token " + t + " row " + r);
            }
        }
    }

    private static byte[] resource(String name) throws IOException {
        try (InputStream in = WeightMatrixDotTest.class.getResourceAsStream("/quants/" + name)) {
            return in.readAllBytes();
        }
    }
}
