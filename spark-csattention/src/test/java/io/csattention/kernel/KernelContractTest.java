package io.csattention.kernel;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The same cases against every {@link VectorKernels} backend, compared with {@link ScalarKernels}, on odd and prime
 * lengths (to hit every loop tail: 4-row passes, 4-accumulator passes, 128-bit passes, scalar tails) and non-zero
 * offsets.
 *
 * <p>Tolerance: a float sum of n products is within {@code gamma_n * sum|terms|} of the exact value, gamma_n being
 * about {@code n * 2^-24}; two summation orders therefore differ by at most {@code n * ulp(1f) * sum|terms|}. We
 * allow twice that. Sums of one term must match exactly.
 */
class KernelContractTest {

    static final int[] LENGTHS = {1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 131, 257};
    static final int[] OFFSETS = {0, 1, 3};
    static final long SEED = 20261128L;

    @BeforeAll
    static void printSeed() {
        System.out.println("KernelContractTest seed=" + SEED);
    }

    static Stream<VectorKernels> backends() {
        List<VectorKernels> all = new ArrayList<>();
        all.add(ScalarKernels.INSTANCE);
        Kernels.simd().ifPresent(all::add);
        return all.stream();
    }

    static float[] random(SplittableRandom random, int size) {
        float[] out = new float[size];
        for (int i = 0; i < size; i++) {
            out[i] = (float) (random.nextDouble() * 2 - 1);
        }
        return out;
    }

    static void assertClose(double expected, double actual, int terms, double sumAbs, String what) {
        double tolerance = terms <= 1 ? 0 : 2.0 * terms * Math.ulp(1f) * sumAbs;
        assertTrue(Math.abs(expected - actual) <= tolerance,
                what + ": expected " + expected + " got " + actual + " (tolerance " + tolerance + ")");
    }

    static double sumAbsProducts(float[] a, int aOff, float[] b, int bOff, int length) {
        double s = 0;
        for (int i = 0; i < length; i++) {
            s += Math.abs((double) a[aOff + i] * b[bOff + i]);
        }
        return s;
    }

    @ParameterizedTest
    @MethodSource("backends")
    void dotAndDistanceMatchScalar(VectorKernels kernels) {
        SplittableRandom random = new SplittableRandom(SEED);
        ScalarKernels ref = ScalarKernels.INSTANCE;
        for (int length : LENGTHS) {
            for (int aOff : OFFSETS) {
                for (int bOff : OFFSETS) {
                    float[] a = random(random, aOff + length + 2);
                    float[] b = random(random, bOff + length + 2);
                    String what = kernels.name() + " length=" + length + " aOff=" + aOff + " bOff=" + bOff;
                    assertClose(ref.dot(a, aOff, b, bOff, length), kernels.dot(a, aOff, b, bOff, length), length,
                            sumAbsProducts(a, aOff, b, bOff, length), "dot " + what);
                    double sumSquares = 0;
                    for (int i = 0; i < length; i++) {
                        double diff = a[aOff + i] - b[bOff + i];
                        sumSquares += diff * diff;
                    }
                    assertClose(ref.squaredDistance(a, aOff, b, bOff, length),
                            kernels.squaredDistance(a, aOff, b, bOff, length), length, sumSquares,
                            "squaredDistance " + what);
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void dotTokensIsDotForEveryTokenBitForBit(VectorKernels kernels) {
        SplittableRandom random = new SplittableRandom(SEED + 7);
        for (int length : LENGTHS) {
            for (int tokens : new int[] {1, 3, 4, 5, 9}) {
                int rowOff = 1;
                int xStride = length + 2;
                float[] row = random(random, rowOff + length);
                float[] x = random(random, 3 + tokens * xStride);
                float[] out = new float[2 + 3 * tokens];
                kernels.dotTokens(row, rowOff, x, 3, xStride, tokens, length, out, 2, 3);
                for (int t = 0; t < tokens; t++) {
                    assertEquals(Float.floatToIntBits(kernels.dot(row, rowOff, x, 3 + t * xStride, length)),
                            Float.floatToIntBits(out[2 + 3 * t]), kernels.name() + " length=" + length + " tokens="
                                    + tokens + " token " + t);
                }
            }
        }
    }

    /** Σ_b scale_b * Σ_i code * x in float64, and Σ |scale * code * x| (for the tolerance). */
    static double[] codeDotReference(byte[] codes, int codesOff, int stride, int blockSize, float[] scales,
                                     float[] x, int xOff, int blocks) {
        double sum = 0;
        double sumAbs = 0;
        for (int b = 0; b < blocks; b++) {
            double partial = 0;
            for (int i = 0; i < blockSize; i++) {
                double term = (double) codes[codesOff + b * stride + i] * x[xOff + b * blockSize + i];
                partial += term;
                sumAbs += Math.abs(term * scales[b]);
            }
            sum += partial * scales[b];
        }
        return new double[] {sum, sumAbs};
    }

    @ParameterizedTest
    @MethodSource("backends")
    void dotCodesMatchFloat64AndTokensGiveTheSameBits(VectorKernels kernels) {
        SplittableRandom random = new SplittableRandom(SEED + 8);
        for (int blockSize : new int[] {16, 32}) {
            for (int blocks : new int[] {1, 3, 7, 64}) {
                int stride = blockSize + 2;
                byte[] codes = new byte[3 + blocks * stride];
                random.nextBytes(codes);
                float[] scales = random(random, blocks);
                int tokens = 9;
                int xStride = blocks * blockSize + 1;
                float[] x = random(random, 2 + tokens * xStride);
                float[] out = new float[1 + 2 * tokens];
                kernels.dotCodesTokens(codes, 3, stride, blockSize, scales, x, 2, xStride, tokens, out, 1, 2, blocks,
                        new float[blocks * blockSize]);
                for (int t = 0; t < tokens; t++) {
                    String what = kernels.name() + " blockSize=" + blockSize + " blocks=" + blocks + " token " + t;
                    float single = kernels.dotCodes(codes, 3, stride, blockSize, scales, x, 2 + t * xStride, blocks);
                    double[] ref = codeDotReference(codes, 3, stride, blockSize, scales, x, 2 + t * xStride, blocks);
                    assertClose(ref[0], single, blocks * (blockSize + 1), ref[1], "dotCodes " + what);
                    assertEquals(Float.floatToIntBits(single), Float.floatToIntBits(out[1 + 2 * t]),
                            "dotCodesTokens " + what);
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void interleaveIsAPermutationWithinBlocksOf32(VectorKernels kernels) {
        SplittableRandom random = new SplittableRandom(SEED + 9);
        for (int length : new int[] {32, 64, 70, 200}) {
            float[] x = random(random, 1 + length);
            float[] out = new float[2 + length];
            kernels.interleave(x, 1, length, out, 2);
            for (int b = 0; b < length; b += 32) {
                int end = Math.min(length, b + 32);
                float[] in = java.util.Arrays.copyOfRange(x, 1 + b, 1 + end);
                float[] got = java.util.Arrays.copyOfRange(out, 2 + b, 2 + end);
                java.util.Arrays.sort(in);
                java.util.Arrays.sort(got);
                assertTrue(java.util.Arrays.equals(in, got), kernels.name() + " length=" + length + " block " + b);
            }
        }
    }

    /**
     * Q8_0 rows (a float16 scale before each block's 32 codes) read in place from a heap buffer and a direct buffer,
     * with the scales read inline and given as an array, against float64 over x in element order; the tokens form
     * bit for bit.
     */
    @ParameterizedTest
    @MethodSource("backends")
    void dotCodes32MatchFloat64InEveryLayout(VectorKernels kernels) {
        SplittableRandom random = new SplittableRandom(SEED + 10);
        for (int blocks : new int[] {1, 2, 5, 64}) {
            int start = 7;
            byte[] bytes = new byte[start + blocks * 34 + 3];
            random.nextBytes(bytes);
            float[] scales = new float[blocks];
            for (int b = 0; b < blocks; b++) {
                short half = io.csattention.format.Half.fromFloat((float) (random.nextDouble() * 0.02 - 0.01));
                bytes[start + 34 * b] = (byte) half;
                bytes[start + 34 * b + 1] = (byte) (half >> 8);
                scales[b] = io.csattention.format.Half.toFloat(half);
            }
            java.nio.ByteBuffer heap = java.nio.ByteBuffer.wrap(bytes);
            java.nio.ByteBuffer direct = java.nio.ByteBuffer.allocateDirect(bytes.length).put(bytes);
            int cols = 32 * blocks;
            int tokens = 6;
            float[] x = random(random, tokens * cols);
            float[] xi = new float[tokens * cols];
            for (int t = 0; t < tokens; t++) {
                kernels.interleave(x, t * cols, cols, xi, t * cols);
            }
            float[] out = new float[tokens];
            kernels.dotCodes32Tokens(direct, start + 2, 34, scales, xi, 0, cols, tokens, out, 0, 1, blocks,
                    new float[cols]);
            for (int t = 0; t < tokens; t++) {
                String what = kernels.name() + " blocks=" + blocks + " token " + t;
                double[] ref = codeDotReference(bytes, start + 2, 34, 32, scales, x, t * cols, blocks);
                float inline = kernels.dotCodes32(heap, start + 2, 34, null, xi, t * cols, blocks);
                assertClose(ref[0], inline, blocks * 33, ref[1], "dotCodes32 " + what);
                assertEquals(Float.floatToIntBits(inline),
                        Float.floatToIntBits(kernels.dotCodes32(heap, start + 2, 34, scales, xi, t * cols, blocks)),
                        "scales given " + what);
                assertEquals(Float.floatToIntBits(inline),
                        Float.floatToIntBits(kernels.dotCodes32(direct, start + 2, 34, null, xi, t * cols, blocks)),
                        "direct buffer " + what);
                assertEquals(Float.floatToIntBits(inline), Float.floatToIntBits(out[t]), "dotCodes32Tokens " + what);
            }
            // two rows at once: row A the heap buffer's, row B a second row (the first with its codes reversed) in
            // a direct buffer; outputs interleaved [token][2] as a matrix product writes them
            byte[] second = bytes.clone();
            for (int b = 0; b < blocks; b++) {
                for (int i = 0; i < 16; i++) {
                    int lo = start + 34 * b + 2 + i;
                    int hi = start + 34 * b + 33 - i;
                    byte swap = second[lo];
                    second[lo] = second[hi];
                    second[hi] = swap;
                }
            }
            float[] scalesB = new float[blocks];
            for (int b = 0; b < blocks; b++) {
                // row B's scales are row A's in reverse block order
                second[start + 34 * b] = bytes[start + 34 * (blocks - 1 - b)];
                second[start + 34 * b + 1] = bytes[start + 34 * (blocks - 1 - b) + 1];
                scalesB[b] = scales[blocks - 1 - b];
            }
            java.nio.ByteBuffer secondDirect = java.nio.ByteBuffer.allocateDirect(second.length).put(second);
            float[] pair = new float[2 * tokens];
            kernels.dotCodes32TokensPair(heap, start + 2, secondDirect, start + 2, 34, scales, scalesB, xi, 0, cols,
                    tokens, pair, 0, 1, 2, blocks, new float[cols], new float[cols]);
            for (int t = 0; t < tokens; t++) {
                String what = kernels.name() + " blocks=" + blocks + " token " + t;
                double[] refB = codeDotReference(second, start + 2, 34, 32, scalesB, x, t * cols, blocks);
                assertClose(refB[0], pair[2 * t + 1], blocks * 33, refB[1], "dotCodes32TokensPair row B " + what);
                assertEquals(Float.floatToIntBits(kernels.dotCodes32(heap, start + 2, 34, scales, xi, t * cols,
                        blocks)), Float.floatToIntBits(pair[2 * t]), "dotCodes32TokensPair row A " + what);
                assertEquals(Float.floatToIntBits(kernels.dotCodes32(secondDirect, start + 2, 34, null, xi,
                        t * cols, blocks)), Float.floatToIntBits(pair[2 * t + 1]), "dotCodes32TokensPair row B " + what);
            }
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void dotRowsMatchScalar(VectorKernels kernels) {
        SplittableRandom random = new SplittableRandom(SEED + 1);
        for (int length : LENGTHS) {
            for (int rowCount : new int[] {1, 3, 4, 7, 17}) {
                int stride = length + 5;
                int colOff = 2;
                int firstRow = 3;
                float[] rows = random(random, (firstRow + rowCount) * stride);
                float[] x = random(random, length + 1);
                float[] out = new float[rowCount + 2];
                kernels.dotRows(x, 1, rows, stride, colOff, length, firstRow, rowCount, out, 2);
                for (int r = 0; r < rowCount; r++) {
                    int rowOff = (firstRow + r) * stride + colOff;
                    assertClose(ScalarKernels.INSTANCE.dot(x, 1, rows, rowOff, length), out[2 + r], length,
                            sumAbsProducts(x, 1, rows, rowOff, length),
                            "dotRows " + kernels.name() + " length=" + length + " rows=" + rowCount + " r=" + r);
                }
                assertEquals(0f, out[0]);
                assertEquals(0f, out[1]);
                // rows in whole groups of four get the bits of four at a time (the SIMD kernel also takes eight)
                for (int r = 0; r + 4 <= rowCount; r += 4) {
                    float[] four = new float[4];
                    kernels.dotRows(x, 1, rows, stride, colOff, length, firstRow + r, 4, four, 0);
                    for (int k = 0; k < 4; k++) {
                        assertEquals(four[k], out[2 + r + k], "dotRows in fours " + kernels.name() + " length="
                                + length + " rows=" + rowCount + " r=" + (r + k));
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void dotSelectedRowsMatchScalar(VectorKernels kernels) {
        SplittableRandom random = new SplittableRandom(SEED + 2);
        for (int stride : LENGTHS) {
            int n = 31;
            float[] rows = random(random, n * stride);
            float[] x = random(random, stride + 3);
            for (int count : new int[] {1, 3, 4, 5, 13, 19}) {
                int[] ids = random.ints(count, 0, n).toArray();
                float[] out = new float[count];
                kernels.dotSelectedRows(x, 3, rows, stride, ids, count, out);
                for (int j = 0; j < count; j++) {
                    assertClose(ScalarKernels.INSTANCE.dot(x, 3, rows, ids[j] * stride, stride), out[j], stride,
                            sumAbsProducts(x, 3, rows, ids[j] * stride, stride),
                            "dotSelectedRows " + kernels.name() + " stride=" + stride + " count=" + count);
                }
                for (int j = 0; j + 4 <= count; j += 4) { // whole groups of four: the bits of four at a time
                    float[] four = new float[4];
                    kernels.dotSelectedRows(x, 3, rows, stride, java.util.Arrays.copyOfRange(ids, j, j + 4), 4, four);
                    for (int k = 0; k < 4; k++) {
                        assertEquals(four[k], out[j + k], "dotSelectedRows in fours " + kernels.name() + " stride="
                                + stride + " count=" + count + " j=" + (j + k));
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void dotSelectedCodesMatchScalar(VectorKernels kernels) {
        SplittableRandom random = new SplittableRandom(SEED + 8);
        for (int stride : LENGTHS) {
            int n = 29;
            byte[] codes = new byte[n * stride];
            random.nextBytes(codes);
            float[] scales = random(random, n);
            float[] x = random(random, stride + 2);
            for (int count : new int[] {1, 3, 4, 5, 13}) {
                int[] ids = random.ints(count + 1, 0, n).toArray(); // ids[0] is skipped through idsOff
                float[] out = new float[count + 2];
                kernels.dotSelectedCodes(x, 2, codes, stride, scales, ids, 1, count, out, 2);
                for (int j = 0; j < count; j++) {
                    float[] alone = new float[1];
                    kernels.dotSelectedCodes(x, 2, codes, stride, scales, ids, 1 + j, 1, alone, 0);
                    assertEquals(alone[0], out[2 + j], "a row's result must not depend on its group, stride="
                            + stride + " count=" + count + " j=" + j);
                }
                for (int j = 0; j < count; j++) {
                    double exact = 0;
                    double sumAbs = 0;
                    for (int i = 0; i < stride; i++) {
                        double term = (double) x[2 + i] * codes[ids[1 + j] * stride + i];
                        exact += term;
                        sumAbs += Math.abs(term);
                    }
                    float scale = scales[ids[1 + j]];
                    assertClose(exact * scale, out[2 + j], stride + 1, sumAbs * Math.abs(scale),
                            "dotSelectedCodes " + kernels.name() + " stride=" + stride + " count=" + count);
                }
            }
        }
    }

    /**
     * Several queries at once give each (query, row) the bits of that query's {@code dotSelectedCodes} alone, and
     * that is the float64 dot product within rounding; 1 to 9 queries (groups of four and the rest), odd strides.
     */
    @ParameterizedTest
    @MethodSource("backends")
    void dotSelectedCodesManyIsEachQueryAlone(VectorKernels kernels) {
        SplittableRandom random = new SplittableRandom(SEED + 18);
        for (int stride : LENGTHS) {
            int n = 31;
            byte[] codes = new byte[n * stride];
            random.nextBytes(codes);
            float[] scales = random(random, n);
            for (int queries = 1; queries <= 9; queries++) {
                int xStride = stride + 3;
                float[] x = random(random, 1 + queries * xStride);
                for (int count : new int[] {1, 2, 5, 14}) {
                    int[] ids = random.ints(count + 1, 0, n).toArray();
                    float[][] out = new float[queries][count + 2];
                    kernels.dotSelectedCodesMany(x, 1, xStride, queries, codes, stride, scales, ids, 1, count, out,
                            2);
                    for (int q = 0; q < queries; q++) {
                        float[] alone = new float[count];
                        kernels.dotSelectedCodes(x, 1 + q * xStride, codes, stride, scales, ids, 1, count, alone, 0);
                        for (int j = 0; j < count; j++) {
                            String where = kernels.name() + " stride=" + stride + " queries=" + queries + " count="
                                    + count + " q=" + q + " j=" + j;
                            assertEquals(alone[j], out[q][2 + j], "dotSelectedCodesMany " + where);
                            double exact = 0;
                            double sumAbs = 0;
                            for (int i = 0; i < stride; i++) {
                                double term = (double) x[1 + q * xStride + i] * codes[ids[1 + j] * stride + i];
                                exact += term;
                                sumAbs += Math.abs(term);
                            }
                            float scale = scales[ids[1 + j]];
                            assertClose(exact * scale, out[q][2 + j], stride + 1, sumAbs * Math.abs(scale),
                                    "dotSelectedCodesMany exact " + where);
                        }
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void boundRowsMatchScalar(VectorKernels kernels) {
        SplittableRandom random = new SplittableRandom(SEED + 9);
        for (int length : LENGTHS) {
            int pages = 7;
            float[] low = random(random, pages * length);
            float[] high = random(random, pages * length);
            float[] x = random(random, length + 1);
            float[] out = new float[pages];
            kernels.boundRows(x, 1, low, high, length, 2, pages - 2, out, 1);
            for (int p = 2; p < pages; p++) {
                double exact = 0;
                double sumAbs = 0;
                for (int c = 0; c < length; c++) {
                    double term = Math.max((double) x[1 + c] * low[p * length + c],
                            (double) x[1 + c] * high[p * length + c]);
                    exact += term;
                    sumAbs += Math.abs(term);
                }
                assertClose(exact, out[p - 1], length + 1, sumAbs, "boundRows " + kernels.name() + " length=" + length);
            }
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void axpyMatchesScalar(VectorKernels kernels) {
        SplittableRandom random = new SplittableRandom(SEED + 3);
        for (int length : LENGTHS) {
            for (int off : OFFSETS) {
                float[] x = random(random, off + length);
                float[] y = random(random, length + 4);
                float[] expected = y.clone();
                ScalarKernels.INSTANCE.axpy(0.37f, x, off, expected, 4 - off, length);
                kernels.axpy(0.37f, x, off, y, 4 - off, length);
                for (int i = 0; i < y.length; i++) {
                    // one fused or unfused multiply-add per element: at most one rounding apart
                    assertEquals(expected[i], y[i], 2 * Math.ulp(Math.abs(expected[i]) + 1f),
                            "axpy " + kernels.name() + " length=" + length + " i=" + i);
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void sumSelectedRowsMatchesScalar(VectorKernels kernels) {
        SplittableRandom random = new SplittableRandom(SEED + 4);
        for (int stride : LENGTHS) {
            int n = 23;
            float[] rows = random(random, n * stride);
            for (int count : new int[] {0, 1, 3, 17, 45, 70}) {
                int[] ids = random.ints(count, 0, n).toArray();
                float[] weights = random(random, count);
                float[] out = new float[stride + 2];
                java.util.Arrays.fill(out, 9f);
                kernels.sumSelectedRows(weights, rows, stride, ids, count, out, 1);
                for (int c = 0; c < stride; c++) {
                    double exact = 0;
                    double sumAbs = 0;
                    for (int j = 0; j < count; j++) {
                        double term = (double) weights[j] * rows[ids[j] * stride + c];
                        exact += term;
                        sumAbs += Math.abs(term);
                    }
                    assertClose(exact, out[1 + c], Math.max(2, count), sumAbs,
                            "sumSelectedRows " + kernels.name() + " stride=" + stride + " count=" + count);
                }
                assertEquals(9f, out[0]);
                assertEquals(9f, out[stride + 1]);
            }
        }
    }

    /**
     * Transposed scores: within float32 error of float64 dots, and bit for bit the scalar chain (every key-count tail:
     * 4-vector passes, single vectors, scalar keys; query tiles of four and single queries; strides and offsets).
     */
    @ParameterizedTest
    @MethodSource("backends")
    void dotTransposedMatchesFloat64AndTheScalarChainBitForBit(VectorKernels kernels) {
        SplittableRandom random = new SplittableRandom(SEED + 11);
        for (int length : new int[] {1, 3, 8, 17, 64, 128}) {
            for (int keys : new int[] {1, 5, 16, 17, 63, 64, 65, 100, 128}) {
                for (int queries : new int[] {1, 4, 5, 7}) {
                    int qStride = length + 3;
                    int ktStride = keys + 5;
                    float[] q = random(random, 1 + queries * qStride);
                    float[] kt = random(random, 2 + length * ktStride);
                    int outStride = keys + 2;
                    float[] got = new float[3 + queries * outStride];
                    float[] want = new float[3 + queries * outStride];
                    kernels.dotTransposed(q, 1, qStride, queries, kt, 2, ktStride, length, keys, got, 3, outStride);
                    ScalarKernels.INSTANCE.dotTransposed(q, 1, qStride, queries, kt, 2, ktStride, length, keys, want,
                            3, outStride);
                    String what = kernels.name() + " length=" + length + " keys=" + keys + " queries=" + queries;
                    org.junit.jupiter.api.Assertions.assertArrayEquals(want, got, "dotTransposed " + what);
                    for (int i = 0; i < queries; i++) {
                        for (int j = 0; j < keys; j++) {
                            double exact = 0;
                            double sumAbs = 0;
                            for (int e = 0; e < length; e++) {
                                double term = (double) q[1 + i * qStride + e] * kt[2 + e * ktStride + j];
                                exact += term;
                                sumAbs += Math.abs(term);
                            }
                            // each product rounds too (fused: once per step), so length + 1 roundings
                            assertClose(exact, got[3 + i * outStride + j], length + 1, sumAbs,
                                    "dotTransposed " + what);
                        }
                    }
                    assertEquals(0f, got[0] + got[1] + got[2], "nothing written before the block: " + what);
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void dotBlockAndAddWeightedRowsMatchScalar(VectorKernels kernels) {
        SplittableRandom random = new SplittableRandom(SEED + 5);
        for (int length : LENGTHS) {
            // 150 rows: more than two of the SIMD accumulators' spans of rows, and a short last span
            for (int queries : new int[] {1, 3, 4, 7}) {
                for (int rowCount : new int[] {11, 150}) {
                    int firstRow = 2;
                    int qStride = length + 1;
                    float[] q = random(random, 2 + queries * qStride);
                    float[] rows = random(random, (firstRow + rowCount) * length);
                    int outStride = rowCount + 3;
                    float[] scores = new float[1 + queries * outStride];
                    kernels.dotBlock(q, 2, qStride, queries, rows, length, length, firstRow, rowCount, scores, 1,
                            outStride);
                    // the queries of whole tiles of four get the bits of row by row (the SIMD kernel reduces two
                    // rows' accumulators together); the others go through dotRows, whose grouping of rows may differ
                    float[] alone = new float[1 + queries * outStride];
                    for (int r = 0; r < rowCount; r++) {
                        kernels.dotBlock(q, 2, qStride, queries, rows, length, length, firstRow + r, 1, alone,
                                1 + r, outStride);
                    }
                    for (int i = 0; i < queries - queries % 4; i++) {
                        for (int r = 0; r < rowCount; r++) {
                            assertEquals(alone[1 + i * outStride + r], scores[1 + i * outStride + r],
                                    "dotBlock row by row " + kernels.name() + " length=" + length + " queries="
                                            + queries + " row=" + r);
                        }
                    }
                    for (int i = 0; i < queries; i++) {
                        for (int r = 0; r < rowCount; r++) {
                            int qOff = 2 + i * qStride;
                            int rowOff = (firstRow + r) * length;
                            assertClose(ScalarKernels.INSTANCE.dot(q, qOff, rows, rowOff, length),
                                    scores[1 + i * outStride + r], length,
                                    sumAbsProducts(q, qOff, rows, rowOff, length),
                                    "dotBlock " + kernels.name() + " length=" + length + " queries=" + queries);
                        }
                    }

                    float[] out = random(random, 3 + queries * qStride);
                    float[] expected = out.clone();
                    ScalarKernels.INSTANCE.addWeightedRows(scores, 1, outStride, queries, rows, length, length,
                            firstRow, rowCount, expected, 3, qStride);
                    kernels.addWeightedRows(scores, 1, outStride, queries, rows, length, length, firstRow, rowCount,
                            out, 3, qStride);
                    for (int i = 0; i < queries; i++) {
                        for (int c = 0; c < length; c++) {
                            double sumAbs = 1;
                            for (int r = 0; r < rowCount; r++) {
                                sumAbs += Math.abs(scores[1 + i * outStride + r] * rows[(firstRow + r) * length + c]);
                            }
                            int at = 3 + i * qStride + c;
                            assertClose(expected[at], out[at], rowCount + 1, sumAbs,
                                    "addWeightedRows " + kernels.name() + " length=" + length + " queries=" + queries);
                        }
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void expShiftedAndMaxMatchScalar(VectorKernels kernels) {
        SplittableRandom random = new SplittableRandom(SEED + 6);
        for (int length : LENGTHS) {
            float[] values = random(random, length + 3);
            for (int i = 0; i < values.length; i++) {
                values[i] *= 20;
            }
            float max = ScalarKernels.INSTANCE.max(values, 2, length);
            assertEquals(max, kernels.max(values, 2, length), "max " + kernels.name() + " length=" + length);
            // a NaN anywhere gives NaN, as Math.max; infinities of both signs are values like any other
            for (float special : new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY}) {
                float[] marked = values.clone();
                marked[2 + length / 2] = special;
                marked[2 + (length - 1) / 3] = Float.isNaN(special) ? 1f : -special;
                assertEquals(ScalarKernels.INSTANCE.max(marked, 2, length), kernels.max(marked, 2, length),
                        "max with " + special + " " + kernels.name() + " length=" + length);
            }
            float[] expected = values.clone();
            float expectedSum = ScalarKernels.INSTANCE.expShifted(expected, 2, length, max);
            float actualSum = kernels.expShifted(values, 2, length, max);
            // exp within 2 ulp of float (the vector intrinsic is accurate to ~1 ulp), sum of positive terms
            for (int i = 0; i < values.length; i++) {
                assertEquals(expected[i], values[i], 4 * Math.ulp(expected[i]),
                        "expShifted " + kernels.name() + " length=" + length + " i=" + i);
            }
            assertClose(expectedSum, actualSum, length + 2, expectedSum * 2, "expShifted sum " + kernels.name());
        }
    }
}
