package io.csattention.kernel;

import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * The same loops with {@code jdk.incubator.vector}. Loaded only by {@link Kernels} after it has checked that the
 * incubator module is present.
 *
 * <p>Why the loops look the way they do: a single fused multiply-add chain is latency bound (4 cycles per FMA on
 * current x86), so dot products keep four independent accumulators; row kernels process four rows per pass so the
 * query chunk is loaded once for four FMAs and the four horizontal reductions overlap. Vectors shorter than the
 * preferred species (e.g. the 16-float subspaces of the index on a 512-bit machine are exactly one vector, 8 floats
 * are not) use the 128-bit species, and the last {@code length % lanes} elements run as a scalar tail.
 */
final class SimdKernels implements VectorKernels {

    /**
     * The system property that lets the float kernels use the preferred species when it is wider than 256 bits
     * ({@code preferred}); by default they use at most 256 bits.
     */
    static final String WIDTH_PROPERTY = "csattention.simd.width";
    /**
     * The float kernels' species: the preferred one, capped at 256 bits unless {@value #WIDTH_PROPERTY} is
     * {@code preferred}. Measured on JDK 17 on a 2-core AVX-512 machine (AMD EPYC), the 512-bit species had its
     * accumulators boxed in the attention kernels (JFR: over 100 GB allocated per line in one 8K-context benchmark)
     * and the 256-bit one did not: causal prefill 4x faster, full-attention decode 2x.
     */
    private static final VectorSpecies<Float> WIDE = "preferred".equals(System.getProperty(WIDTH_PROPERTY, ""))
            || FloatVector.SPECIES_PREFERRED.vectorBitSize() <= 256 ? FloatVector.SPECIES_PREFERRED
            : FloatVector.SPECIES_256;
    private static final VectorSpecies<Float> NARROW = FloatVector.SPECIES_128;
    private static final int LANES = WIDE.length();
    private static final int NARROW_LANES = NARROW.length();
    /** Bytes with as many lanes as {@link #WIDE}: one load widens into one float vector. */
    private static final VectorSpecies<Byte> CODES = VectorSpecies.of(byte.class, VectorShape.forBitSize(LANES * 8));
    /** The 256-bit species of the 32-code block kernels ({@link #dotCodes32}), whatever the preferred width. */
    private static final VectorSpecies<Float> F256 = FloatVector.SPECIES_256;
    private static final VectorSpecies<Integer> I256 = IntVector.SPECIES_256;
    /** Ints of {@link #WIDE}'s shape. */
    /** Whether the machine has 256-bit vectors: the 32-code block kernels need them, else the scalar loops run. */
    private static final boolean INTERLEAVE = WIDE.vectorBitSize() >= 256;
    /** Query rows per tile of {@link #dotBlock} and {@link #addWeightedRows}. */
    private static final int QUERY_TILE = 4;

    @Override
    public String name() {
        return "simd";
    }

    /**
     * The eight-accumulator reduction ("sums8"): the {@link #sum} of each of eight 8-lane vectors a..h at once, in
     * lanes {@code [a, e, c, g, b, f, d, h]}, with the additions of {@code sum} in its order (lane i plus lane i + 4,
     * then (0 + 2) + (1 + 3); float addition is commutative, so the order of each add's operands does not change
     * its bits): halves {@code ab = a.blend(b, UPPER_HALF) + b.blend(a, UPPER_HALF).rearrange(SWAP_HALVES)}, and
     * likewise cd, ef, gh; pairs {@code abcd} from ab and cd with UPPER_PAIRS and SWAP_PAIRS, and efgh; the last
     * add with ODD_LANES and SWAP_NEIGHBOURS. 7 vector adds, 14 blends and 7 lane swaps instead of 8 x (8 lane reads
     * and 7 scalar adds). Written out where it is used: as a method (208 bytes of bytecode) C2 compiled it on its own
     * to 3.7 KB, above {@code InlineSmallCode}, after which a caller's compile may refuse to inline it and box its
     * eight vectors (the JDK 17 finding of {@link #dotCodes32}).
     */
    private static final VectorMask<Float> UPPER_HALF = VectorMask.fromValues(F256, false, false, false, false, true,
            true, true, true);
    private static final VectorMask<Float> UPPER_PAIRS = VectorMask.fromValues(F256, false, false, true, true, false,
            false, true, true);
    private static final VectorMask<Float> ODD_LANES = VectorMask.fromValues(F256, false, true, false, true, false,
            true, false, true);
    private static final VectorShuffle<Float> SWAP_HALVES = VectorShuffle.fromValues(F256, 4, 5, 6, 7, 0, 1, 2, 3);
    private static final VectorShuffle<Float> SWAP_PAIRS = VectorShuffle.fromValues(F256, 2, 3, 0, 1, 6, 7, 4, 5);
    private static final VectorShuffle<Float> SWAP_NEIGHBOURS = VectorShuffle.fromValues(F256, 1, 0, 3, 2, 5, 4, 7,
            6);
    /** Whether the eight-accumulator reduction serves: eight-lane float kernels (the default 256-bit species). */
    private static final boolean SUMS8 = LANES == 8;


    /**
     * The sum of a vector's lanes in one fixed order (halves, then quarters, ...), the same in interpreted and
     * compiled code by construction. The API lets {@code reduceLanes(ADD)} add in any order, which could differ
     * between the Java fallback and a compiled intrinsic (we have not seen it on JDK 17 x86, but it is not promised),
     * and a retried task must give identical output.
     */
    private static float sum(FloatVector v) {
        // the lanes go through a small array and are added as scalars in the fold order: a method this small is
        // inlined wherever it is called, so the vector stays in a register; a helper that keeps the folds as
        // vector rearranges is too large to inline in the big kernels, gets the vector boxed, and C2 compiled its
        // rearranges to the Vector API's Java fallback (measured on JDK 17, AVX-512: 40% of a model run's samples)
        if (v.length() == 8) {
            // eight lanes read one by one (no array: where escape analysis gave up, every reduction allocated),
            // added in fold's order
            float x0 = v.lane(0) + v.lane(4);
            float x1 = v.lane(1) + v.lane(5);
            float x2 = v.lane(2) + v.lane(6);
            float x3 = v.lane(3) + v.lane(7);
            return (x0 + x2) + (x1 + x3);
        }
        float[] lanes = new float[v.length()];
        v.intoArray(lanes, 0);
        return fold(lanes);
    }

    /**
     * Adds the upper half onto the lower half until one value is left (lane i with lane i + half, halves, then
     * quarters, ...), the fixed order of {@link #sum}; 16 lanes (512-bit) written out.
     */
    private static float fold(float[] l) {
        return fold(l, 0, l.length);
    }

    /** {@link #fold} of the {@code n} values at {@code l[o]}: {@code n} a power of two, 8 and 16 written out. */
    private static float fold(float[] l, int o, int n) {
        if (n == 16) {
            float w0 = l[o] + l[o + 8];
            float w1 = l[o + 1] + l[o + 9];
            float w2 = l[o + 2] + l[o + 10];
            float w3 = l[o + 3] + l[o + 11];
            float w4 = l[o + 4] + l[o + 12];
            float w5 = l[o + 5] + l[o + 13];
            float w6 = l[o + 6] + l[o + 14];
            float w7 = l[o + 7] + l[o + 15];
            float x0 = w0 + w4;
            float x1 = w1 + w5;
            float x2 = w2 + w6;
            float x3 = w3 + w7;
            return (x0 + x2) + (x1 + x3);
        }
        if (n == 8) {
            float x0 = l[o] + l[o + 4];
            float x1 = l[o + 1] + l[o + 5];
            float x2 = l[o + 2] + l[o + 6];
            float x3 = l[o + 3] + l[o + 7];
            return (x0 + x2) + (x1 + x3);
        }
        float[] c = java.util.Arrays.copyOfRange(l, o, o + n);
        for (int half = n >> 1; half >= 1; half >>= 1) {
            for (int i = 0; i < half; i++) {
                c[i] = c[i] + c[i + half];
            }
        }
        return c[0];
    }

    @Override
    public float dot(float[] a, int aOff, float[] b, int bOff, int length) {
        if (length < LANES) {
            return length >= NARROW_LANES ? dotNarrow(a, aOff, b, bOff, length)
                    : dotScalar(a, aOff, b, bOff, 0, length, 0f);
        }
        FloatVector acc0 = FloatVector.zero(WIDE);
        FloatVector acc1 = FloatVector.zero(WIDE);
        FloatVector acc2 = FloatVector.zero(WIDE);
        FloatVector acc3 = FloatVector.zero(WIDE);
        int i = 0;
        for (int upper4 = length - 4 * LANES; i <= upper4; i += 4 * LANES) {
            acc0 = FloatVector.fromArray(WIDE, a, aOff + i).fma(FloatVector.fromArray(WIDE, b, bOff + i), acc0);
            acc1 = FloatVector.fromArray(WIDE, a, aOff + i + LANES)
                    .fma(FloatVector.fromArray(WIDE, b, bOff + i + LANES), acc1);
            acc2 = FloatVector.fromArray(WIDE, a, aOff + i + 2 * LANES)
                    .fma(FloatVector.fromArray(WIDE, b, bOff + i + 2 * LANES), acc2);
            acc3 = FloatVector.fromArray(WIDE, a, aOff + i + 3 * LANES)
                    .fma(FloatVector.fromArray(WIDE, b, bOff + i + 3 * LANES), acc3);
        }
        for (int upper = length - LANES; i <= upper; i += LANES) {
            acc0 = FloatVector.fromArray(WIDE, a, aOff + i).fma(FloatVector.fromArray(WIDE, b, bOff + i), acc0);
        }
        float sum = sum(acc0.add(acc1).add(acc2.add(acc3)));
        return dotScalar(a, aOff, b, bOff, i, length, sum);
    }

    private static float dotNarrow(float[] a, int aOff, float[] b, int bOff, int length) {
        FloatVector acc = FloatVector.zero(NARROW);
        int i = 0;
        for (int upper = length - NARROW_LANES; i <= upper; i += NARROW_LANES) {
            acc = FloatVector.fromArray(NARROW, a, aOff + i).fma(FloatVector.fromArray(NARROW, b, bOff + i), acc);
        }
        return dotScalar(a, aOff, b, bOff, i, length, sum(acc));
    }

    private static float dotScalar(float[] a, int aOff, float[] b, int bOff, int from, int length, float sum) {
        for (int i = from; i < length; i++) {
            sum += a[aOff + i] * b[bOff + i];
        }
        return sum;
    }

    @Override
    public float squaredDistance(float[] a, int aOff, float[] b, int bOff, int length) {
        int i = 0;
        float sum = 0f;
        if (length >= LANES) {
            FloatVector acc0 = FloatVector.zero(WIDE);
            FloatVector acc1 = FloatVector.zero(WIDE);
            for (int upper2 = length - 2 * LANES; i <= upper2; i += 2 * LANES) {
                FloatVector d0 = FloatVector.fromArray(WIDE, a, aOff + i).sub(FloatVector.fromArray(WIDE, b, bOff + i));
                FloatVector d1 = FloatVector.fromArray(WIDE, a, aOff + i + LANES)
                        .sub(FloatVector.fromArray(WIDE, b, bOff + i + LANES));
                acc0 = d0.fma(d0, acc0);
                acc1 = d1.fma(d1, acc1);
            }
            for (int upper = length - LANES; i <= upper; i += LANES) {
                FloatVector d0 = FloatVector.fromArray(WIDE, a, aOff + i).sub(FloatVector.fromArray(WIDE, b, bOff + i));
                acc0 = d0.fma(d0, acc0);
            }
            // reduced here, not through sum() (codes32FourTokens' reason: 67 GB boxed in one benchmark's k-means)
            float[] lanes = new float[LANES];
            acc0.add(acc1).intoArray(lanes, 0);
            sum = fold(lanes, 0, LANES);
        } else if (length >= NARROW_LANES) {
            FloatVector acc = FloatVector.zero(NARROW);
            for (int upper = length - NARROW_LANES; i <= upper; i += NARROW_LANES) {
                FloatVector d0 = FloatVector.fromArray(NARROW, a, aOff + i)
                        .sub(FloatVector.fromArray(NARROW, b, bOff + i));
                acc = d0.fma(d0, acc);
            }
            sum = sum(acc);
        }
        for (; i < length; i++) {
            float diff = a[aOff + i] - b[bOff + i];
            sum += diff * diff;
        }
        return sum;
    }

    @Override
    public void dotRows(float[] x, int xOff, float[] rows, int stride, int colOff, int length,
                        int firstRow, int rowCount, float[] out, int outOff) {
        int r = 0;
        if (length >= LANES) {
            if (SUMS8 && length % LANES == 0) {
                for (; r + 8 <= rowCount; r += 8) {
                    int o = (firstRow + r) * stride + colOff;
                    dot8Wide(x, xOff, rows, o, stride, null, 0, length, out, outOff + r);
                }
            }
            for (; r + 4 <= rowCount; r += 4) {
                int o = (firstRow + r) * stride + colOff;
                dot4Wide(x, xOff, rows, o, o + stride, o + 2 * stride, o + 3 * stride, length, out, outOff + r);
            }
        } else if (length >= NARROW_LANES) {
            for (; r + 4 <= rowCount; r += 4) {
                int o = (firstRow + r) * stride + colOff;
                dot4Narrow(x, xOff, rows, o, o + stride, o + 2 * stride, o + 3 * stride, length, out, outOff + r);
            }
        }
        for (; r < rowCount; r++) {
            out[outOff + r] = dot(x, xOff, rows, (firstRow + r) * stride + colOff, length);
        }
    }

    @Override
    public void dotSelectedRows(float[] x, int xOff, float[] rows, int stride, int[] ids, int count, float[] out) {
        int j = 0;
        if (stride >= LANES) {
            if (SUMS8 && stride % LANES == 0) {
                for (; j + 8 <= count; j += 8) {
                    dot8Wide(x, xOff, rows, 0, stride, ids, j, stride, out, j);
                }
            }
            for (; j + 4 <= count; j += 4) {
                dot4Wide(x, xOff, rows, ids[j] * stride, ids[j + 1] * stride, ids[j + 2] * stride,
                        ids[j + 3] * stride, stride, out, j);
            }
        } else if (stride >= NARROW_LANES) {
            for (; j + 4 <= count; j += 4) {
                dot4Narrow(x, xOff, rows, ids[j] * stride, ids[j + 1] * stride, ids[j + 2] * stride,
                        ids[j + 3] * stride, stride, out, j);
            }
        }
        for (; j < count; j++) {
            out[j] = dot(x, xOff, rows, ids[j] * stride, stride);
        }
    }

    /**
     * Four coded rows per pass, like {@link #dotSelectedRows}: four independent row reads in flight. Every row runs
     * the same operations in the same order whether it is in a group of four or in the tail.
     */
    @Override
    public void dotSelectedCodes(float[] x, int xOff, byte[] codes, int stride, float[] scales, int[] ids,
                                 int idsOff, int count, float[] out, int outOff) {
        if (stride < LANES) {
            VectorKernels.super.dotSelectedCodes(x, xOff, codes, stride, scales, ids, idsOff, count, out, outOff);
            return;
        }
        int j = 0;
        if (SUMS8 && stride % LANES == 0) {
            // eight rows per pass, their sums reduced together (see SUMS8; the bits of the four-row pass below)
            for (; j + 8 <= count; j += 8) {
                int o0 = ids[idsOff + j] * stride;
                int o1 = ids[idsOff + j + 1] * stride;
                int o2 = ids[idsOff + j + 2] * stride;
                int o3 = ids[idsOff + j + 3] * stride;
                int o4 = ids[idsOff + j + 4] * stride;
                int o5 = ids[idsOff + j + 5] * stride;
                int o6 = ids[idsOff + j + 6] * stride;
                int o7 = ids[idsOff + j + 7] * stride;
                FloatVector acc0 = FloatVector.zero(WIDE);
                FloatVector acc1 = FloatVector.zero(WIDE);
                FloatVector acc2 = FloatVector.zero(WIDE);
                FloatVector acc3 = FloatVector.zero(WIDE);
                FloatVector acc4 = FloatVector.zero(WIDE);
                FloatVector acc5 = FloatVector.zero(WIDE);
                FloatVector acc6 = FloatVector.zero(WIDE);
                FloatVector acc7 = FloatVector.zero(WIDE);
                for (int i = 0; i < stride; i += LANES) {
                    FloatVector vx = FloatVector.fromArray(WIDE, x, xOff + i);
                    acc0 = widen(codes, o0 + i).fma(vx, acc0);
                    acc1 = widen(codes, o1 + i).fma(vx, acc1);
                    acc2 = widen(codes, o2 + i).fma(vx, acc2);
                    acc3 = widen(codes, o3 + i).fma(vx, acc3);
                    acc4 = widen(codes, o4 + i).fma(vx, acc4);
                    acc5 = widen(codes, o5 + i).fma(vx, acc5);
                    acc6 = widen(codes, o6 + i).fma(vx, acc6);
                    acc7 = widen(codes, o7 + i).fma(vx, acc7);
                }
                // the eight-accumulator reduction (see SUMS8), written out
                FloatVector sumsH0 = acc0.blend(acc4, UPPER_HALF)
                        .add(acc4.blend(acc0, UPPER_HALF).rearrange(SWAP_HALVES));
                FloatVector sumsH1 = acc2.blend(acc6, UPPER_HALF)
                        .add(acc6.blend(acc2, UPPER_HALF).rearrange(SWAP_HALVES));
                FloatVector sumsH2 = acc1.blend(acc5, UPPER_HALF)
                        .add(acc5.blend(acc1, UPPER_HALF).rearrange(SWAP_HALVES));
                FloatVector sumsH3 = acc3.blend(acc7, UPPER_HALF)
                        .add(acc7.blend(acc3, UPPER_HALF).rearrange(SWAP_HALVES));
                FloatVector sumsP0 = sumsH0.blend(sumsH1, UPPER_PAIRS)
                        .add(sumsH1.blend(sumsH0, UPPER_PAIRS).rearrange(SWAP_PAIRS));
                FloatVector sumsP1 = sumsH2.blend(sumsH3, UPPER_PAIRS)
                        .add(sumsH3.blend(sumsH2, UPPER_PAIRS).rearrange(SWAP_PAIRS));
                FloatVector sums = sumsP0.blend(sumsP1, ODD_LANES)
                        .add(sumsP1.blend(sumsP0, ODD_LANES).rearrange(SWAP_NEIGHBOURS));  // rows 0..7 in order
                int at = outOff + j;
                int id = idsOff + j;
                out[at] = scales[ids[id]] * sums.lane(0);
                out[at + 1] = scales[ids[id + 1]] * sums.lane(1);
                out[at + 2] = scales[ids[id + 2]] * sums.lane(2);
                out[at + 3] = scales[ids[id + 3]] * sums.lane(3);
                out[at + 4] = scales[ids[id + 4]] * sums.lane(4);
                out[at + 5] = scales[ids[id + 5]] * sums.lane(5);
                out[at + 6] = scales[ids[id + 6]] * sums.lane(6);
                out[at + 7] = scales[ids[id + 7]] * sums.lane(7);
            }
        }
        for (; j + 4 <= count; j += 4) {
            int id0 = ids[idsOff + j];
            int id1 = ids[idsOff + j + 1];
            int id2 = ids[idsOff + j + 2];
            int id3 = ids[idsOff + j + 3];
            int o0 = id0 * stride;
            int o1 = id1 * stride;
            int o2 = id2 * stride;
            int o3 = id3 * stride;
            FloatVector acc0 = FloatVector.zero(WIDE);
            FloatVector acc1 = FloatVector.zero(WIDE);
            FloatVector acc2 = FloatVector.zero(WIDE);
            FloatVector acc3 = FloatVector.zero(WIDE);
            int i = 0;
            for (int upper = stride - LANES; i <= upper; i += LANES) {
                FloatVector vx = FloatVector.fromArray(WIDE, x, xOff + i);
                acc0 = widen(codes, o0 + i).fma(vx, acc0);
                acc1 = widen(codes, o1 + i).fma(vx, acc1);
                acc2 = widen(codes, o2 + i).fma(vx, acc2);
                acc3 = widen(codes, o3 + i).fma(vx, acc3);
            }
            out[outOff + j] = scales[id0]
                    * codeTail(x, xOff, codes, o0, i, stride, sum(acc0));
            out[outOff + j + 1] = scales[id1]
                    * codeTail(x, xOff, codes, o1, i, stride, sum(acc1));
            out[outOff + j + 2] = scales[id2]
                    * codeTail(x, xOff, codes, o2, i, stride, sum(acc2));
            out[outOff + j + 3] = scales[id3]
                    * codeTail(x, xOff, codes, o3, i, stride, sum(acc3));
        }
        for (; j < count; j++) {
            int id = ids[idsOff + j];
            int o = id * stride;
            FloatVector acc = FloatVector.zero(WIDE);
            int i = 0;
            for (int upper = stride - LANES; i <= upper; i += LANES) {
                acc = widen(codes, o + i).fma(FloatVector.fromArray(WIDE, x, xOff + i), acc);
            }
            out[outOff + j] = scales[id]
                    * codeTail(x, xOff, codes, o, i, stride, sum(acc));
        }
    }

    /**
     * Four queries at a time over pairs of rows: a row's codes are widened once for the four, and each (row, query)
     * keeps its own accumulator summed in {@link #dotSelectedCodes}'s order, so the bits are the same.
     */
    @Override
    public void dotSelectedCodesMany(float[] x, int xOff, int xStride, int queries, byte[] codes, int stride,
                                     float[] scales, int[] ids, int idsOff, int count, float[][] out, int outOff) {
        int q = 0;
        if (stride >= LANES) {
            int pairs = count & ~1;
            for (; q + 4 <= queries; q += 4) {
                dotCodesFour(x, xOff + q * xStride, xStride, codes, stride, scales, ids, idsOff, pairs,
                        out[q], out[q + 1], out[q + 2], out[q + 3], outOff);
                for (int t = q; t < q + 4 && pairs < count; t++) { // an odd last row: each query alone
                    dotSelectedCodes(x, xOff + t * xStride, codes, stride, scales, ids, idsOff + pairs, 1, out[t],
                            outOff + pairs);
                }
            }
        }
        for (; q < queries; q++) {
            dotSelectedCodes(x, xOff + q * xStride, codes, stride, scales, ids, idsOff, count, out[q], outOff);
        }
    }

    /** Four queries over {@code count} rows, {@code count} even. */
    private static void dotCodesFour(float[] x, int x0, int xStride, byte[] codes, int stride, float[] scales,
                                     int[] ids, int idsOff, int count, float[] out0, float[] out1, float[] out2,
                                     float[] out3, int outOff) {
        int x1 = x0 + xStride;
        int x2 = x1 + xStride;
        int x3 = x2 + xStride;
        int j = 0;
        for (; j + 2 <= count; j += 2) {
            int idA = ids[idsOff + j];
            int idB = ids[idsOff + j + 1];
            int oA = idA * stride;
            int oB = idB * stride;
            FloatVector a0 = FloatVector.zero(WIDE);
            FloatVector a1 = FloatVector.zero(WIDE);
            FloatVector a2 = FloatVector.zero(WIDE);
            FloatVector a3 = FloatVector.zero(WIDE);
            FloatVector b0 = FloatVector.zero(WIDE);
            FloatVector b1 = FloatVector.zero(WIDE);
            FloatVector b2 = FloatVector.zero(WIDE);
            FloatVector b3 = FloatVector.zero(WIDE);
            int i = 0;
            for (int upper = stride - LANES; i <= upper; i += LANES) {
                FloatVector rowA = widen(codes, oA + i);
                FloatVector rowB = widen(codes, oB + i);
                FloatVector v = FloatVector.fromArray(WIDE, x, x0 + i);
                a0 = rowA.fma(v, a0);
                b0 = rowB.fma(v, b0);
                v = FloatVector.fromArray(WIDE, x, x1 + i);
                a1 = rowA.fma(v, a1);
                b1 = rowB.fma(v, b1);
                v = FloatVector.fromArray(WIDE, x, x2 + i);
                a2 = rowA.fma(v, a2);
                b2 = rowB.fma(v, b2);
                v = FloatVector.fromArray(WIDE, x, x3 + i);
                a3 = rowA.fma(v, a3);
                b3 = rowB.fma(v, b3);
            }
            float sA = scales[idA];
            float sB = scales[idB];
            if (SUMS8 && i == stride) {
                // the eight sums at once (the reduction of SUMS8, written out), [a0 a1 a2 a3 | b0 b1 b2 b3], each
                // scaled as below (no tail to add)
                FloatVector rH0 = a0.blend(b0, UPPER_HALF).add(b0.blend(a0, UPPER_HALF).rearrange(SWAP_HALVES));
                FloatVector rH1 = a2.blend(b2, UPPER_HALF).add(b2.blend(a2, UPPER_HALF).rearrange(SWAP_HALVES));
                FloatVector rH2 = a1.blend(b1, UPPER_HALF).add(b1.blend(a1, UPPER_HALF).rearrange(SWAP_HALVES));
                FloatVector rH3 = a3.blend(b3, UPPER_HALF).add(b3.blend(a3, UPPER_HALF).rearrange(SWAP_HALVES));
                FloatVector rP0 = rH0.blend(rH1, UPPER_PAIRS).add(rH1.blend(rH0, UPPER_PAIRS).rearrange(SWAP_PAIRS));
                FloatVector rP1 = rH2.blend(rH3, UPPER_PAIRS).add(rH3.blend(rH2, UPPER_PAIRS).rearrange(SWAP_PAIRS));
                FloatVector r = rP0.blend(rP1, ODD_LANES).add(rP1.blend(rP0, ODD_LANES).rearrange(SWAP_NEIGHBOURS))
                        .mul(FloatVector.broadcast(F256, sA).blend(FloatVector.broadcast(F256, sB), UPPER_HALF));
                out0[outOff + j] = r.lane(0);
                out1[outOff + j] = r.lane(1);
                out2[outOff + j] = r.lane(2);
                out3[outOff + j] = r.lane(3);
                out0[outOff + j + 1] = r.lane(4);
                out1[outOff + j + 1] = r.lane(5);
                out2[outOff + j + 1] = r.lane(6);
                out3[outOff + j + 1] = r.lane(7);
                continue;
            }
            out0[outOff + j] = sA * codeTail(x, x0, codes, oA, i, stride, sum(a0));
            out1[outOff + j] = sA * codeTail(x, x1, codes, oA, i, stride, sum(a1));
            out2[outOff + j] = sA * codeTail(x, x2, codes, oA, i, stride, sum(a2));
            out3[outOff + j] = sA * codeTail(x, x3, codes, oA, i, stride, sum(a3));
            out0[outOff + j + 1] = sB * codeTail(x, x0, codes, oB, i, stride, sum(b0));
            out1[outOff + j + 1] = sB * codeTail(x, x1, codes, oB, i, stride, sum(b1));
            out2[outOff + j + 1] = sB * codeTail(x, x2, codes, oB, i, stride, sum(b2));
            out3[outOff + j + 1] = sB * codeTail(x, x3, codes, oB, i, stride, sum(b3));
        }
    }

    @Override
    public float dotCodes(byte[] codes, int codesOff, int blockStride, int blockSize, float[] scales, float[] x,
                          int xOff, int blocks) {
        if (blockSize % LANES != 0) {
            return VectorKernels.super.dotCodes(codes, codesOff, blockStride, blockSize, scales, x, xOff, blocks);
        }
        FloatVector total = FloatVector.zero(WIDE);
        for (int b = 0; b < blocks; b++) {
            total = codeBlock(codes, codesOff + b * blockStride, blockSize, x, xOff + b * blockSize)
                    .fma(FloatVector.broadcast(WIDE, scales[b]), total);
        }
        return sum(total);
    }

    @Override
    public boolean interleavesBlocks() {
        return INTERLEAVE;
    }

    @Override
    public void interleave(float[] x, int xOff, int length, float[] out, int outOff) {
        if (!INTERLEAVE) {
            VectorKernels.super.interleave(x, xOff, length, out, outOff);
            return;
        }
        int b = 0;
        for (; b + 32 <= length; b += 32) {
            for (int k = 0; k < 4; k++) {
                for (int j = 0; j < 8; j++) {
                    out[outOff + b + 8 * k + j] = x[xOff + b + 4 * j + k];
                }
            }
        }
        System.arraycopy(x, xOff + b, out, outOff + b, length - b);
    }

    /**
     * Each block's 32 codes are one 256-bit load of eight 32-bit lanes; byte k of every lane is shifted into place
     * and converted, which needs no byte-to-int widening (the cross-lane shuffle that bounds a
     * widening loop) and gives elements 4 j + k: x comes interleaved to match.
     */
    @Override
    public float dotCodes32(java.nio.ByteBuffer codes, int codesOff, int blockStride, float[] scales, float[] x,
                            int xOff, int blocks) {
        if (!INTERLEAVE) {
            return VectorKernels.super.dotCodes32(codes, codesOff, blockStride, scales, x, xOff, blocks);
        }
        byte[] array = codes.hasArray() ? codes.array() : null;
        int base = codes.hasArray() ? codes.arrayOffset() : 0;
        // the total lives in an array, not in a vector carried by a loop, and the blocks go in spans of SPAN, so
        // that no call runs a long vector loop: C2 on JDK 17 sometimes compiled a loop-carried total boxed (30 GB
        // allocated in one 1B-shaped decode, 240 against 140 ms/token), and a long loop gets an on-stack-replacement
        // compile before the normal one, after which the products of some runs stayed 3-10x slower (none of
        // four runs with on-stack replacement off)
        float[] total = new float[8];
        for (int b = 0; b < blocks; b += SPAN) {
            codes32Span(codes, array, base, codesOff, blockStride, scales, x, xOff, b, Math.min(blocks, b + SPAN),
                    total);
        }
        return fold(total, 0, 8);
    }

    /** Blocks per span of a {@link #dotCodes32} call (see there). */
    private static final int SPAN = 16;

    /**
     * Blocks [from, to) of {@link #dotCodes32} added to {@code total} (8 lanes), two blocks per load and store of
     * it; no helper takes or returns a vector (a helper C2 compiled on its own can be refused inlining, and its
     * vectors are then boxed per block), so the block's code is written out for each of the pair and the tail. One
     * block per load and store measured slower in a one-thread micro-benchmark (4.9-5.6 against 7.8-8.0 GMAC/s at
     * 512 columns).
     */
    private static void codes32Span(java.nio.ByteBuffer codes, byte[] array, int base, int codesOff, int blockStride,
                                    float[] scales, float[] x, int xOff, int from, int to, float[] total) {
        int b = from;
        for (; b + 2 <= to; b += 2) {
            int cA = codesOff + (b) * blockStride;
            IntVector vA = array != null
                    ? IntVector.fromByteArray(I256, array, base + cA, java.nio.ByteOrder.LITTLE_ENDIAN)
                    : IntVector.fromByteBuffer(I256, codes, cA, java.nio.ByteOrder.LITTLE_ENDIAN);
            float sA = scales != null ? scales[b]
                    : array != null ? HalfBits.toFloat(array[base + cA - 2], array[base + cA - 1])
                    : HalfBits.toFloat(codes.get(cA - 2), codes.get(cA - 1));
            int oA = xOff + 32 * (b);
            FloatVector pA = ((FloatVector) vA.lanewise(VectorOperators.LSHL, 24)
                    .lanewise(VectorOperators.ASHR, 24).convertShape(VectorOperators.I2F, F256, 0))
                    .mul(FloatVector.fromArray(F256, x, oA));
            pA = ((FloatVector) vA.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 24)
                    .convertShape(VectorOperators.I2F, F256, 0)).fma(FloatVector.fromArray(F256, x, oA + 8), pA);
            pA = ((FloatVector) vA.lanewise(VectorOperators.LSHL, 8).lanewise(VectorOperators.ASHR, 24)
                    .convertShape(VectorOperators.I2F, F256, 0)).fma(FloatVector.fromArray(F256, x, oA + 16),
                    pA);
            pA = ((FloatVector) vA.lanewise(VectorOperators.ASHR, 24)
                    .convertShape(VectorOperators.I2F, F256, 0)).fma(FloatVector.fromArray(F256, x, oA + 24), pA);
            int cB = codesOff + (b + 1) * blockStride;
            IntVector vB = array != null
                    ? IntVector.fromByteArray(I256, array, base + cB, java.nio.ByteOrder.LITTLE_ENDIAN)
                    : IntVector.fromByteBuffer(I256, codes, cB, java.nio.ByteOrder.LITTLE_ENDIAN);
            float sB = scales != null ? scales[b + 1]
                    : array != null ? HalfBits.toFloat(array[base + cB - 2], array[base + cB - 1])
                    : HalfBits.toFloat(codes.get(cB - 2), codes.get(cB - 1));
            int oB = xOff + 32 * (b + 1);
            FloatVector pB = ((FloatVector) vB.lanewise(VectorOperators.LSHL, 24)
                    .lanewise(VectorOperators.ASHR, 24).convertShape(VectorOperators.I2F, F256, 0))
                    .mul(FloatVector.fromArray(F256, x, oB));
            pB = ((FloatVector) vB.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 24)
                    .convertShape(VectorOperators.I2F, F256, 0)).fma(FloatVector.fromArray(F256, x, oB + 8), pB);
            pB = ((FloatVector) vB.lanewise(VectorOperators.LSHL, 8).lanewise(VectorOperators.ASHR, 24)
                    .convertShape(VectorOperators.I2F, F256, 0)).fma(FloatVector.fromArray(F256, x, oB + 16),
                    pB);
            pB = ((FloatVector) vB.lanewise(VectorOperators.ASHR, 24)
                    .convertShape(VectorOperators.I2F, F256, 0)).fma(FloatVector.fromArray(F256, x, oB + 24), pB);
            pB.fma(FloatVector.broadcast(F256, sB), pA.fma(FloatVector.broadcast(F256, sA),
                    FloatVector.fromArray(F256, total, 0))).intoArray(total, 0);
        }
        if (b < to) {
            int cA = codesOff + (b) * blockStride;
            IntVector vA = array != null
                    ? IntVector.fromByteArray(I256, array, base + cA, java.nio.ByteOrder.LITTLE_ENDIAN)
                    : IntVector.fromByteBuffer(I256, codes, cA, java.nio.ByteOrder.LITTLE_ENDIAN);
            float sA = scales != null ? scales[b]
                    : array != null ? HalfBits.toFloat(array[base + cA - 2], array[base + cA - 1])
                    : HalfBits.toFloat(codes.get(cA - 2), codes.get(cA - 1));
            int oA = xOff + 32 * (b);
            FloatVector pA = ((FloatVector) vA.lanewise(VectorOperators.LSHL, 24)
                    .lanewise(VectorOperators.ASHR, 24).convertShape(VectorOperators.I2F, F256, 0))
                    .mul(FloatVector.fromArray(F256, x, oA));
            pA = ((FloatVector) vA.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 24)
                    .convertShape(VectorOperators.I2F, F256, 0)).fma(FloatVector.fromArray(F256, x, oA + 8), pA);
            pA = ((FloatVector) vA.lanewise(VectorOperators.LSHL, 8).lanewise(VectorOperators.ASHR, 24)
                    .convertShape(VectorOperators.I2F, F256, 0)).fma(FloatVector.fromArray(F256, x, oA + 16),
                    pA);
            pA = ((FloatVector) vA.lanewise(VectorOperators.ASHR, 24)
                    .convertShape(VectorOperators.I2F, F256, 0)).fma(FloatVector.fromArray(F256, x, oA + 24), pA);
            pA.fma(FloatVector.broadcast(F256, sA), FloatVector.fromArray(F256, total, 0)).intoArray(total, 0);
        }
    }

    /**
     * Four or more tokens: each block's codes are converted once, in {@link #dotCodes32}'s order, into
     * {@code scratch}; four tokens per pass then share each loaded vector, every token with {@code dotCodes32}'s
     * operations in its order (a converted code is the same float either way), so the bits are one token's.
     */
    @Override
    public void dotCodes32Tokens(java.nio.ByteBuffer codes, int codesOff, int blockStride, float[] scales,
                                 float[] x, int xOff, int xStride, int tokens, float[] out, int outOff, int outStride,
                                 int blocks, float[] scratch) {
        int t = 0;
        if (INTERLEAVE && tokens >= 4) {
            widenCodes32(codes, codesOff, blockStride, blocks, scratch);
            for (; t + 4 <= tokens; t += 4) {
                codes32FourTokens(scratch, scales, x, xOff + t * xStride, xStride, out, outOff + t * outStride,
                        outStride, blocks);
            }
        }
        for (; t < tokens; t++) {
            out[outOff + t * outStride] = dotCodes32(codes, codesOff, blockStride, scales, x, xOff + t * xStride,
                    blocks);
        }
    }

    /**
     * A block's 32 codes as floats into {@code scratch[32 b ..]}, in {@link #dotCodes32}'s order (byte k of the
     * eight 32-bit lanes, shifted into place); no vector crosses the call.
     */
    private static void widenCodes32(java.nio.ByteBuffer codes, int codesOff, int blockStride, int blocks,
                                     float[] scratch) {
        for (int b = 0; b < blocks; b++) {
            IntVector v = codes.hasArray()
                    ? IntVector.fromByteArray(I256, codes.array(), codes.arrayOffset() + codesOff + b * blockStride,
                            java.nio.ByteOrder.LITTLE_ENDIAN)
                    : IntVector.fromByteBuffer(I256, codes, codesOff + b * blockStride,
                            java.nio.ByteOrder.LITTLE_ENDIAN);
            // written out, not through helpers, for dotCodes32's reason (a refused helper boxes per block)
            ((FloatVector) v.lanewise(VectorOperators.LSHL, 24).lanewise(VectorOperators.ASHR, 24)
                    .convertShape(VectorOperators.I2F, F256, 0)).intoArray(scratch, 32 * b);
            ((FloatVector) v.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 24)
                    .convertShape(VectorOperators.I2F, F256, 0)).intoArray(scratch, 32 * b + 8);
            ((FloatVector) v.lanewise(VectorOperators.LSHL, 8).lanewise(VectorOperators.ASHR, 24)
                    .convertShape(VectorOperators.I2F, F256, 0)).intoArray(scratch, 32 * b + 16);
            ((FloatVector) v.lanewise(VectorOperators.ASHR, 24).convertShape(VectorOperators.I2F, F256, 0))
                    .intoArray(scratch, 32 * b + 24);
        }
    }

    /**
     * Two rows and four or more tokens: both rows' codes are widened once, then each pass of four tokens loads every
     * x vector once for the two rows (a tile of 2 x 4 dot products, eight accumulators), each product with
     * {@link #dotCodes32}'s operations in its order, so the bits are one row and one token at a time.
     */
    @Override
    public void dotCodes32TokensPair(java.nio.ByteBuffer codesA, int codesOffA, java.nio.ByteBuffer codesB,
                                     int codesOffB, int blockStride, float[] scalesA, float[] scalesB, float[] x,
                                     int xOff, int xStride, int tokens, float[] out, int outOffA, int outOffB,
                                     int outStride, int blocks, float[] scratchA, float[] scratchB) {
        if (!INTERLEAVE || tokens < 4) {
            VectorKernels.super.dotCodes32TokensPair(codesA, codesOffA, codesB, codesOffB, blockStride, scalesA,
                    scalesB, x, xOff, xStride, tokens, out, outOffA, outOffB, outStride, blocks, scratchA, scratchB);
            return;
        }
        widenCodes32(codesA, codesOffA, blockStride, blocks, scratchA);
        widenCodes32(codesB, codesOffB, blockStride, blocks, scratchB);
        float[] lanes = new float[64];
        int t = 0;
        for (; t + 4 <= tokens; t += 4) {
            java.util.Arrays.fill(lanes, 0f);
            // in spans of blocks, for dotCodes32's reason (no call runs a long vector loop)
            for (int b = 0; b < blocks; b += PAIR_SPAN) {
                codes32PairFourTokens(scratchA, scratchB, scalesA, scalesB, x, xOff + t * xStride, xStride, b,
                        Math.min(blocks, b + PAIR_SPAN), lanes);
            }
            for (int j = 0; j < 4; j++) {
                out[outOffA + (t + j) * outStride] = fold(lanes, 8 * j, 8);
                out[outOffB + (t + j) * outStride] = fold(lanes, 32 + 8 * j, 8);
            }
        }
        for (; t < tokens; t++) {
            out[outOffA + t * outStride] = dotCodes32(codesA, codesOffA, blockStride, scalesA, x, xOff + t * xStride,
                    blocks);
            out[outOffB + t * outStride] = dotCodes32(codesB, codesOffB, blockStride, scalesB, x, xOff + t * xStride,
                    blocks);
        }
    }

    /** Blocks [from, to) of the 2 x 4 tile added to its eight lane-wise totals in {@code lanes}: row A's four
     * tokens, then row B's. */
    private static final int PAIR_SPAN = 8;

    private static void codes32PairFourTokens(float[] rowA, float[] rowB, float[] scalesA, float[] scalesB,
                                              float[] x, int x0, int xStride, int from, int to, float[] lanes) {
        int x1 = x0 + xStride;
        int x2 = x1 + xStride;
        int x3 = x2 + xStride;
        // the totals kept in lanes, not in vectors carried by the block loop, and the body kept small: on JDK 17,
        // C2 sometimes compiled this kernel with loop-carried vectors boxed or its last vector calls left as Java
        // code (measured: the same 16-sequence batch at 95-150 or 400-490 tokens/s, run to run)
        for (int b = from; b < to; b++) {
            int r = 32 * b;
            FloatVector ca = FloatVector.fromArray(F256, rowA, r);
            FloatVector cb = FloatVector.fromArray(F256, rowB, r);
            FloatVector v = FloatVector.fromArray(F256, x, x0 + r);
            FloatVector pa0 = ca.mul(v);
            FloatVector pb0 = cb.mul(v);
            v = FloatVector.fromArray(F256, x, x1 + r);
            FloatVector pa1 = ca.mul(v);
            FloatVector pb1 = cb.mul(v);
            v = FloatVector.fromArray(F256, x, x2 + r);
            FloatVector pa2 = ca.mul(v);
            FloatVector pb2 = cb.mul(v);
            v = FloatVector.fromArray(F256, x, x3 + r);
            FloatVector pa3 = ca.mul(v);
            FloatVector pb3 = cb.mul(v);
            for (int i = r + 8; i < r + 32; i += 8) {
                ca = FloatVector.fromArray(F256, rowA, i);
                cb = FloatVector.fromArray(F256, rowB, i);
                v = FloatVector.fromArray(F256, x, x0 + i);
                pa0 = ca.fma(v, pa0);
                pb0 = cb.fma(v, pb0);
                v = FloatVector.fromArray(F256, x, x1 + i);
                pa1 = ca.fma(v, pa1);
                pb1 = cb.fma(v, pb1);
                v = FloatVector.fromArray(F256, x, x2 + i);
                pa2 = ca.fma(v, pa2);
                pb2 = cb.fma(v, pb2);
                v = FloatVector.fromArray(F256, x, x3 + i);
                pa3 = ca.fma(v, pa3);
                pb3 = cb.fma(v, pb3);
            }
            FloatVector sa = FloatVector.broadcast(F256, scalesA[b]);
            FloatVector sb = FloatVector.broadcast(F256, scalesB[b]);
            pa0.fma(sa, FloatVector.fromArray(F256, lanes, 0)).intoArray(lanes, 0);
            pa1.fma(sa, FloatVector.fromArray(F256, lanes, 8)).intoArray(lanes, 8);
            pa2.fma(sa, FloatVector.fromArray(F256, lanes, 16)).intoArray(lanes, 16);
            pa3.fma(sa, FloatVector.fromArray(F256, lanes, 24)).intoArray(lanes, 24);
            pb0.fma(sb, FloatVector.fromArray(F256, lanes, 32)).intoArray(lanes, 32);
            pb1.fma(sb, FloatVector.fromArray(F256, lanes, 40)).intoArray(lanes, 40);
            pb2.fma(sb, FloatVector.fromArray(F256, lanes, 48)).intoArray(lanes, 48);
            pb3.fma(sb, FloatVector.fromArray(F256, lanes, 56)).intoArray(lanes, 56);
        }
    }

    private static void codes32FourTokens(float[] row, float[] scales, float[] x, int x0, int xStride, float[] out,
                                          int outOff, int outStride, int blocks) {
        int x1 = x0 + xStride;
        int x2 = x1 + xStride;
        int x3 = x2 + xStride;
        // totals in an array and the block written out: no vector carried by a loop (codes32PairFourTokens' reason)
        float[] lanes = new float[32];
        for (int b = 0; b < blocks; b++) {
            int r = 32 * b;
            FloatVector code = FloatVector.fromArray(F256, row, r);
            FloatVector p0 = code.mul(FloatVector.fromArray(F256, x, x0 + r));
            FloatVector p1 = code.mul(FloatVector.fromArray(F256, x, x1 + r));
            FloatVector p2 = code.mul(FloatVector.fromArray(F256, x, x2 + r));
            FloatVector p3 = code.mul(FloatVector.fromArray(F256, x, x3 + r));
            code = FloatVector.fromArray(F256, row, r + 8);
            p0 = code.fma(FloatVector.fromArray(F256, x, x0 + r + 8), p0);
            p1 = code.fma(FloatVector.fromArray(F256, x, x1 + r + 8), p1);
            p2 = code.fma(FloatVector.fromArray(F256, x, x2 + r + 8), p2);
            p3 = code.fma(FloatVector.fromArray(F256, x, x3 + r + 8), p3);
            code = FloatVector.fromArray(F256, row, r + 16);
            p0 = code.fma(FloatVector.fromArray(F256, x, x0 + r + 16), p0);
            p1 = code.fma(FloatVector.fromArray(F256, x, x1 + r + 16), p1);
            p2 = code.fma(FloatVector.fromArray(F256, x, x2 + r + 16), p2);
            p3 = code.fma(FloatVector.fromArray(F256, x, x3 + r + 16), p3);
            code = FloatVector.fromArray(F256, row, r + 24);
            p0 = code.fma(FloatVector.fromArray(F256, x, x0 + r + 24), p0);
            p1 = code.fma(FloatVector.fromArray(F256, x, x1 + r + 24), p1);
            p2 = code.fma(FloatVector.fromArray(F256, x, x2 + r + 24), p2);
            p3 = code.fma(FloatVector.fromArray(F256, x, x3 + r + 24), p3);
            FloatVector scale = FloatVector.broadcast(F256, scales[b]);
            p0.fma(scale, FloatVector.fromArray(F256, lanes, 0)).intoArray(lanes, 0);
            p1.fma(scale, FloatVector.fromArray(F256, lanes, 8)).intoArray(lanes, 8);
            p2.fma(scale, FloatVector.fromArray(F256, lanes, 16)).intoArray(lanes, 16);
            p3.fma(scale, FloatVector.fromArray(F256, lanes, 24)).intoArray(lanes, 24);
        }
        out[outOff] = fold(lanes, 0, 8);
        out[outOff + outStride] = fold(lanes, 8, 8);
        out[outOff + 2 * outStride] = fold(lanes, 16, 8);
        out[outOff + 3 * outStride] = fold(lanes, 24, 8);
    }

    /** One block's lane-wise partial sums of code times x, from its first vector on. */
    private static FloatVector codeBlock(byte[] codes, int c, int blockSize, float[] x, int o) {
        FloatVector partial = widen(codes, c).mul(FloatVector.fromArray(WIDE, x, o));
        for (int i = LANES; i < blockSize; i += LANES) {
            partial = widen(codes, c + i).fma(FloatVector.fromArray(WIDE, x, o + i), partial);
        }
        return partial;
    }

    /**
     * Four or more tokens: the codes are widened once into {@code scratch}, then four tokens per pass share each
     * loaded vector of it, every token with {@link #dotCodes}'s accumulators and order (a widened code is exactly
     * the float the fused loop converts it to), so the bits are those of one token at a time.
     */
    @Override
    public void dotCodesTokens(byte[] codes, int codesOff, int blockStride, int blockSize, float[] scales,
                               float[] x, int xOff, int xStride, int tokens, float[] out, int outOff, int outStride,
                               int blocks, float[] scratch) {
        int t = 0;
        if (blockSize % LANES == 0 && tokens >= 4) {
            for (int b = 0; b < blocks; b++) {
                int c = codesOff + b * blockStride;
                for (int i = 0; i < blockSize; i += LANES) {
                    widen(codes, c + i).intoArray(scratch, b * blockSize + i);
                }
            }
            for (; t + 4 <= tokens; t += 4) {
                codeFourTokens(scratch, blockSize, scales, x, xOff + t * xStride, xStride, out,
                        outOff + t * outStride, outStride, blocks);
            }
        }
        for (; t < tokens; t++) {
            out[outOff + t * outStride] = dotCodes(codes, codesOff, blockStride, blockSize, scales, x,
                    xOff + t * xStride, blocks);
        }
    }

    private static void codeFourTokens(float[] row, int blockSize, float[] scales, float[] x, int x0, int xStride,
                                       float[] out, int outOff, int outStride, int blocks) {
        int x1 = x0 + xStride;
        int x2 = x1 + xStride;
        int x3 = x2 + xStride;
        FloatVector t0 = FloatVector.zero(WIDE);
        FloatVector t1 = FloatVector.zero(WIDE);
        FloatVector t2 = FloatVector.zero(WIDE);
        FloatVector t3 = FloatVector.zero(WIDE);
        for (int b = 0; b < blocks; b++) {
            int r = b * blockSize;
            FloatVector code = FloatVector.fromArray(WIDE, row, r);
            FloatVector p0 = code.mul(FloatVector.fromArray(WIDE, x, x0 + r));
            FloatVector p1 = code.mul(FloatVector.fromArray(WIDE, x, x1 + r));
            FloatVector p2 = code.mul(FloatVector.fromArray(WIDE, x, x2 + r));
            FloatVector p3 = code.mul(FloatVector.fromArray(WIDE, x, x3 + r));
            for (int i = r + LANES; i < r + blockSize; i += LANES) {
                code = FloatVector.fromArray(WIDE, row, i);
                p0 = code.fma(FloatVector.fromArray(WIDE, x, x0 + i), p0);
                p1 = code.fma(FloatVector.fromArray(WIDE, x, x1 + i), p1);
                p2 = code.fma(FloatVector.fromArray(WIDE, x, x2 + i), p2);
                p3 = code.fma(FloatVector.fromArray(WIDE, x, x3 + i), p3);
            }
            FloatVector scale = FloatVector.broadcast(WIDE, scales[b]);
            t0 = p0.fma(scale, t0);
            t1 = p1.fma(scale, t1);
            t2 = p2.fma(scale, t2);
            t3 = p3.fma(scale, t3);
        }
        // reduced here, not through sum() (codes32FourTokens' reason)
        float[] lanes = new float[4 * LANES];
        t0.intoArray(lanes, 0);
        t1.intoArray(lanes, LANES);
        t2.intoArray(lanes, 2 * LANES);
        t3.intoArray(lanes, 3 * LANES);
        out[outOff] = fold(lanes, 0, LANES);
        out[outOff + outStride] = fold(lanes, LANES, LANES);
        out[outOff + 2 * outStride] = fold(lanes, 2 * LANES, LANES);
        out[outOff + 3 * outStride] = fold(lanes, 3 * LANES, LANES);
    }

    @Override
    public void dotTokens(float[] row, int rowOff, float[] x, int xOff, int xStride, int tokens, int length,
                          float[] out, int outOff, int outStride) {
        int t = 0;
        if (length >= LANES) {
            for (; t + 4 <= tokens; t += 4) {
                dotFourTokens(row, rowOff, x, xOff + t * xStride, xStride, length, out, outOff + t * outStride,
                        outStride);
            }
        }
        for (; t < tokens; t++) {
            out[outOff + t * outStride] = dot(row, rowOff, x, xOff + t * xStride, length);
        }
    }

    /**
     * {@link #dot} of one row with four tokens, each with the accumulators and order {@code dot} uses (four over
     * chunks of 4 lanes-wide vectors, then the first over single vectors, then the scalar tail), the row's chunk
     * loaded once for the four.
     */
    private static void dotFourTokens(float[] row, int rowOff, float[] x, int xOff, int xStride, int length,
                                      float[] out, int outOff, int outStride) {
        int x0 = xOff;
        int x1 = xOff + xStride;
        int x2 = xOff + 2 * xStride;
        int x3 = xOff + 3 * xStride;
        FloatVector a00 = FloatVector.zero(WIDE);
        FloatVector a01 = FloatVector.zero(WIDE);
        FloatVector a02 = FloatVector.zero(WIDE);
        FloatVector a03 = FloatVector.zero(WIDE);
        FloatVector a10 = FloatVector.zero(WIDE);
        FloatVector a11 = FloatVector.zero(WIDE);
        FloatVector a12 = FloatVector.zero(WIDE);
        FloatVector a13 = FloatVector.zero(WIDE);
        FloatVector a20 = FloatVector.zero(WIDE);
        FloatVector a21 = FloatVector.zero(WIDE);
        FloatVector a22 = FloatVector.zero(WIDE);
        FloatVector a23 = FloatVector.zero(WIDE);
        FloatVector a30 = FloatVector.zero(WIDE);
        FloatVector a31 = FloatVector.zero(WIDE);
        FloatVector a32 = FloatVector.zero(WIDE);
        FloatVector a33 = FloatVector.zero(WIDE);
        int i = 0;
        for (int upper4 = length - 4 * LANES; i <= upper4; i += 4 * LANES) {
            FloatVector r0 = FloatVector.fromArray(WIDE, row, rowOff + i);
            FloatVector r1 = FloatVector.fromArray(WIDE, row, rowOff + i + LANES);
            FloatVector r2 = FloatVector.fromArray(WIDE, row, rowOff + i + 2 * LANES);
            FloatVector r3 = FloatVector.fromArray(WIDE, row, rowOff + i + 3 * LANES);
            a00 = r0.fma(FloatVector.fromArray(WIDE, x, x0 + i), a00);
            a01 = r1.fma(FloatVector.fromArray(WIDE, x, x0 + i + LANES), a01);
            a02 = r2.fma(FloatVector.fromArray(WIDE, x, x0 + i + 2 * LANES), a02);
            a03 = r3.fma(FloatVector.fromArray(WIDE, x, x0 + i + 3 * LANES), a03);
            a10 = r0.fma(FloatVector.fromArray(WIDE, x, x1 + i), a10);
            a11 = r1.fma(FloatVector.fromArray(WIDE, x, x1 + i + LANES), a11);
            a12 = r2.fma(FloatVector.fromArray(WIDE, x, x1 + i + 2 * LANES), a12);
            a13 = r3.fma(FloatVector.fromArray(WIDE, x, x1 + i + 3 * LANES), a13);
            a20 = r0.fma(FloatVector.fromArray(WIDE, x, x2 + i), a20);
            a21 = r1.fma(FloatVector.fromArray(WIDE, x, x2 + i + LANES), a21);
            a22 = r2.fma(FloatVector.fromArray(WIDE, x, x2 + i + 2 * LANES), a22);
            a23 = r3.fma(FloatVector.fromArray(WIDE, x, x2 + i + 3 * LANES), a23);
            a30 = r0.fma(FloatVector.fromArray(WIDE, x, x3 + i), a30);
            a31 = r1.fma(FloatVector.fromArray(WIDE, x, x3 + i + LANES), a31);
            a32 = r2.fma(FloatVector.fromArray(WIDE, x, x3 + i + 2 * LANES), a32);
            a33 = r3.fma(FloatVector.fromArray(WIDE, x, x3 + i + 3 * LANES), a33);
        }
        for (int upper = length - LANES; i <= upper; i += LANES) {
            FloatVector r = FloatVector.fromArray(WIDE, row, rowOff + i);
            a00 = r.fma(FloatVector.fromArray(WIDE, x, x0 + i), a00);
            a10 = r.fma(FloatVector.fromArray(WIDE, x, x1 + i), a10);
            a20 = r.fma(FloatVector.fromArray(WIDE, x, x2 + i), a20);
            a30 = r.fma(FloatVector.fromArray(WIDE, x, x3 + i), a30);
        }
        // reduced here, not through sum() (codes32FourTokens' reason)
        float[] lanes = new float[4 * LANES];
        a00.add(a01).add(a02.add(a03)).intoArray(lanes, 0);
        a10.add(a11).add(a12.add(a13)).intoArray(lanes, LANES);
        a20.add(a21).add(a22.add(a23)).intoArray(lanes, 2 * LANES);
        a30.add(a31).add(a32.add(a33)).intoArray(lanes, 3 * LANES);
        out[outOff] = dotScalar(row, rowOff, x, x0, i, length, fold(lanes, 0, LANES));
        out[outOff + outStride] = dotScalar(row, rowOff, x, x1, i, length, fold(lanes, LANES, LANES));
        out[outOff + 2 * outStride] = dotScalar(row, rowOff, x, x2, i, length, fold(lanes, 2 * LANES, LANES));
        out[outOff + 3 * outStride] = dotScalar(row, rowOff, x, x3, i, length, fold(lanes, 3 * LANES, LANES));
    }

    /** {@code LANES} int8 codes at {@code off} as floats. */
    private static FloatVector widen(byte[] codes, int off) {
        return (FloatVector) ByteVector.fromArray(CODES, codes, off).convertShape(VectorOperators.B2F, WIDE, 0);
    }

    private static float codeTail(float[] x, int xOff, byte[] codes, int off, int from, int length, float sum) {
        for (int i = from; i < length; i++) {
            sum += x[xOff + i] * codes[off + i];
        }
        return sum;
    }

    @Override
    public void boundRows(float[] x, int xOff, float[] low, float[] high, int length, int firstRow, int rowCount,
                          float[] out, int outOff) {
        if (length < LANES) {
            VectorKernels.super.boundRows(x, xOff, low, high, length, firstRow, rowCount, out, outOff);
            return;
        }
        for (int p = 0; p < rowCount; p++) {
            int o = (firstRow + p) * length;
            FloatVector acc0 = FloatVector.zero(WIDE);
            FloatVector acc1 = FloatVector.zero(WIDE);
            int c = 0;
            for (int upper2 = length - 2 * LANES; c <= upper2; c += 2 * LANES) {
                FloatVector q0 = FloatVector.fromArray(WIDE, x, xOff + c);
                FloatVector q1 = FloatVector.fromArray(WIDE, x, xOff + c + LANES);
                acc0 = acc0.add(q0.mul(FloatVector.fromArray(WIDE, low, o + c))
                        .max(q0.mul(FloatVector.fromArray(WIDE, high, o + c))));
                acc1 = acc1.add(q1.mul(FloatVector.fromArray(WIDE, low, o + c + LANES))
                        .max(q1.mul(FloatVector.fromArray(WIDE, high, o + c + LANES))));
            }
            for (int upper = length - LANES; c <= upper; c += LANES) {
                FloatVector q0 = FloatVector.fromArray(WIDE, x, xOff + c);
                acc0 = acc0.add(q0.mul(FloatVector.fromArray(WIDE, low, o + c))
                        .max(q0.mul(FloatVector.fromArray(WIDE, high, o + c))));
            }
            float bound = sum(acc0.add(acc1));
            for (; c < length; c++) {
                float q = x[xOff + c];
                bound += Math.max(q * low[o + c], q * high[o + c]);
            }
            out[outOff + p] = bound;
        }
    }

    /**
     * Eight dot products of x with rows, written to out[outOff .. outOff+8), each with {@link #dot4Wide}'s bits:
     * the rows at {@code first + k * stride} (ids null) or at {@code ids[idsOff + k] * stride}; {@code length} a
     * multiple of 8 (no tail). The eight sums are reduced together (see SUMS8), written out.
     */
    private static void dot8Wide(float[] x, int xOff, float[] rows, int first, int stride, int[] ids, int idsOff,
                                 int length, float[] out, int outOff) {
        int o0 = ids == null ? first : ids[idsOff] * stride;
        int o1 = ids == null ? first + stride : ids[idsOff + 1] * stride;
        int o2 = ids == null ? first + 2 * stride : ids[idsOff + 2] * stride;
        int o3 = ids == null ? first + 3 * stride : ids[idsOff + 3] * stride;
        int o4 = ids == null ? first + 4 * stride : ids[idsOff + 4] * stride;
        int o5 = ids == null ? first + 5 * stride : ids[idsOff + 5] * stride;
        int o6 = ids == null ? first + 6 * stride : ids[idsOff + 6] * stride;
        int o7 = ids == null ? first + 7 * stride : ids[idsOff + 7] * stride;
        FloatVector acc0 = FloatVector.zero(WIDE);
        FloatVector acc1 = FloatVector.zero(WIDE);
        FloatVector acc2 = FloatVector.zero(WIDE);
        FloatVector acc3 = FloatVector.zero(WIDE);
        FloatVector acc4 = FloatVector.zero(WIDE);
        FloatVector acc5 = FloatVector.zero(WIDE);
        FloatVector acc6 = FloatVector.zero(WIDE);
        FloatVector acc7 = FloatVector.zero(WIDE);
        for (int i = 0; i < length; i += LANES) {
            FloatVector vx = FloatVector.fromArray(WIDE, x, xOff + i);
            acc0 = FloatVector.fromArray(WIDE, rows, o0 + i).fma(vx, acc0);
            acc1 = FloatVector.fromArray(WIDE, rows, o1 + i).fma(vx, acc1);
            acc2 = FloatVector.fromArray(WIDE, rows, o2 + i).fma(vx, acc2);
            acc3 = FloatVector.fromArray(WIDE, rows, o3 + i).fma(vx, acc3);
            acc4 = FloatVector.fromArray(WIDE, rows, o4 + i).fma(vx, acc4);
            acc5 = FloatVector.fromArray(WIDE, rows, o5 + i).fma(vx, acc5);
            acc6 = FloatVector.fromArray(WIDE, rows, o6 + i).fma(vx, acc6);
            acc7 = FloatVector.fromArray(WIDE, rows, o7 + i).fma(vx, acc7);
        }
        // the eight-accumulator reduction (see SUMS8), written out: rows 0..7 in order
        FloatVector h0 = acc0.blend(acc4, UPPER_HALF).add(acc4.blend(acc0, UPPER_HALF).rearrange(SWAP_HALVES));
        FloatVector h1 = acc2.blend(acc6, UPPER_HALF).add(acc6.blend(acc2, UPPER_HALF).rearrange(SWAP_HALVES));
        FloatVector h2 = acc1.blend(acc5, UPPER_HALF).add(acc5.blend(acc1, UPPER_HALF).rearrange(SWAP_HALVES));
        FloatVector h3 = acc3.blend(acc7, UPPER_HALF).add(acc7.blend(acc3, UPPER_HALF).rearrange(SWAP_HALVES));
        FloatVector p0 = h0.blend(h1, UPPER_PAIRS).add(h1.blend(h0, UPPER_PAIRS).rearrange(SWAP_PAIRS));
        FloatVector p1 = h2.blend(h3, UPPER_PAIRS).add(h3.blend(h2, UPPER_PAIRS).rearrange(SWAP_PAIRS));
        FloatVector sums = p0.blend(p1, ODD_LANES).add(p1.blend(p0, ODD_LANES).rearrange(SWAP_NEIGHBOURS));
        sums.intoArray(out, outOff);
    }

    /** Four dot products of x with rows at offsets o0..o3, written to out[outOff .. outOff+4). */
    private static void dot4Wide(float[] x, int xOff, float[] rows, int o0, int o1, int o2, int o3, int length,
                                 float[] out, int outOff) {
        FloatVector acc0 = FloatVector.zero(WIDE);
        FloatVector acc1 = FloatVector.zero(WIDE);
        FloatVector acc2 = FloatVector.zero(WIDE);
        FloatVector acc3 = FloatVector.zero(WIDE);
        int i = 0;
        for (int upper = length - LANES; i <= upper; i += LANES) {
            FloatVector vx = FloatVector.fromArray(WIDE, x, xOff + i);
            acc0 = FloatVector.fromArray(WIDE, rows, o0 + i).fma(vx, acc0);
            acc1 = FloatVector.fromArray(WIDE, rows, o1 + i).fma(vx, acc1);
            acc2 = FloatVector.fromArray(WIDE, rows, o2 + i).fma(vx, acc2);
            acc3 = FloatVector.fromArray(WIDE, rows, o3 + i).fma(vx, acc3);
        }
        out[outOff] = dotScalar(x, xOff, rows, o0, i, length, sum(acc0));
        out[outOff + 1] = dotScalar(x, xOff, rows, o1, i, length, sum(acc1));
        out[outOff + 2] = dotScalar(x, xOff, rows, o2, i, length, sum(acc2));
        out[outOff + 3] = dotScalar(x, xOff, rows, o3, i, length, sum(acc3));
    }

    private static void dot4Narrow(float[] x, int xOff, float[] rows, int o0, int o1, int o2, int o3, int length,
                                   float[] out, int outOff) {
        FloatVector acc0 = FloatVector.zero(NARROW);
        FloatVector acc1 = FloatVector.zero(NARROW);
        FloatVector acc2 = FloatVector.zero(NARROW);
        FloatVector acc3 = FloatVector.zero(NARROW);
        int i = 0;
        for (int upper = length - NARROW_LANES; i <= upper; i += NARROW_LANES) {
            FloatVector vx = FloatVector.fromArray(NARROW, x, xOff + i);
            acc0 = FloatVector.fromArray(NARROW, rows, o0 + i).fma(vx, acc0);
            acc1 = FloatVector.fromArray(NARROW, rows, o1 + i).fma(vx, acc1);
            acc2 = FloatVector.fromArray(NARROW, rows, o2 + i).fma(vx, acc2);
            acc3 = FloatVector.fromArray(NARROW, rows, o3 + i).fma(vx, acc3);
        }
        out[outOff] = dotScalar(x, xOff, rows, o0, i, length, sum(acc0));
        out[outOff + 1] = dotScalar(x, xOff, rows, o1, i, length, sum(acc1));
        out[outOff + 2] = dotScalar(x, xOff, rows, o2, i, length, sum(acc2));
        out[outOff + 3] = dotScalar(x, xOff, rows, o3, i, length, sum(acc3));
    }

    @Override
    public void axpy(float alpha, float[] x, int xOff, float[] y, int yOff, int length) {
        int i = 0;
        if (length >= LANES) {
            FloatVector va = FloatVector.broadcast(WIDE, alpha);
            for (int upper = length - LANES; i <= upper; i += LANES) {
                FloatVector.fromArray(WIDE, x, xOff + i).fma(va, FloatVector.fromArray(WIDE, y, yOff + i))
                        .intoArray(y, yOff + i);
            }
        }
        for (; i < length; i++) {
            y[yOff + i] += alpha * x[xOff + i];
        }
    }

    /**
     * Vector exp of {@code values - shift}: {@link #exp}, built from adds, multiplies and fused multiply-adds only, so
     * that it rounds the same interpreted and compiled (the API's {@code EXP} does not: its Java fallback and its
     * compiled intrinsic differ in the last bit).
     */
    @Override
    public float expShifted(float[] values, int off, int length, float shift) {
        int i = 0;
        float sum = 0f;
        if (length >= LANES) {
            // spans of EXP_SPAN vectors, the running sum in an array and exp written out in the span's loop: the
            // helper form (a vector into and out of exp, a sum carried by a loop over every key) was compiled boxed
            // in some runs (JFR: 40 GB allocated in exp in one 8K-context benchmark); the adds are the same
            float[] acc = new float[LANES];
            int whole = length - length % LANES;
            while (i < whole) {
                int vectors = Math.min(EXP_SPAN, (whole - i) / LANES);
                expSpan(values, off + i, vectors, shift, acc);
                i += vectors * LANES;
            }
            sum = fold(acc, 0, LANES);
        }
        for (; i < length; i++) {
            values[off + i] = (float) Math.exp(values[off + i] - shift);
            sum += values[off + i];
        }
        return sum;
    }

    private static final float LOG2E = 1.44269504f;
    /** ln 2 split so that {@code n * LN2_HIGH} is exact for |n| < 2^11. */
    private static final float LN2_HIGH = 0.693145751953125f;
    private static final float LN2_LOW = 1.42860677e-6f;
    /** Adding 1.5 * 2^23 rounds a float of magnitude below 2^22 to an integer, to nearest. */
    private static final float ROUNDER = 12582912f;
    private static final int ROUNDER_BITS = Float.floatToRawIntBits(ROUNDER);
    /** Below this exp is under the smallest normal float: flushed to 0 (the softmax cannot tell). */
    private static final float EXP_MIN = -87.33f;
    private static final float EXP_MAX = 88f;

    /** Vectors of {@link #expShifted} per call of {@link #expSpan}. */
    private static final int EXP_SPAN = 8;

    /**
     * {@code vectors} vectors at {@code at}: each value becomes {@code exp(value - shift)}, which is added to
     * {@code acc}'s lanes. exp(x) within about 2 ulp for x <= 88 (larger x saturates at exp(88); the softmax only
     * passes x <= 0): x = n ln2 + r with |r| <= ln2 / 2 (Cody-Waite), exp(r) by its Taylor polynomial of degree 7
     * (truncation error below 2^-27), scaled by 2^n through the exponent bits; below EXP_MIN it is 0.
     */
    private static void expSpan(float[] values, int at, int vectors, float shift, float[] acc) {
        FloatVector vs = FloatVector.broadcast(WIDE, shift);
        FloatVector sum = FloatVector.fromArray(WIDE, acc, 0);
        for (int k = 0; k < vectors; k++) {
            int o = at + k * LANES;
            FloatVector x = FloatVector.fromArray(WIDE, values, o).sub(vs);
            VectorMask<Float> tiny = x.lt(EXP_MIN);
            FloatVector clamped = x.max(EXP_MIN).min(EXP_MAX);
            FloatVector rounded = clamped.fma(FloatVector.broadcast(WIDE, LOG2E),
                    FloatVector.broadcast(WIDE, ROUNDER));
            FloatVector n = rounded.sub(ROUNDER);
            FloatVector r = n.fma(FloatVector.broadcast(WIDE, -LN2_HIGH), clamped).add(n.mul(-LN2_LOW));
            FloatVector p = FloatVector.broadcast(WIDE, 1f / 5040f);
            p = p.fma(r, FloatVector.broadcast(WIDE, 1f / 720f));
            p = p.fma(r, FloatVector.broadcast(WIDE, 1f / 120f));
            p = p.fma(r, FloatVector.broadcast(WIDE, 1f / 24f));
            p = p.fma(r, FloatVector.broadcast(WIDE, 1f / 6f));
            p = p.fma(r, FloatVector.broadcast(WIDE, 0.5f));
            p = p.fma(r, FloatVector.broadcast(WIDE, 1f));
            p = p.fma(r, FloatVector.broadcast(WIDE, 1f));
            // the rounded float's low mantissa bits hold n (|n| < 2^22): its bits less those of ROUNDER are n,
            // read without a float-to-int conversion, which AVX2 has no vector form of in JDK 17 (it would fall
            // back to a boxed Java loop)
            IntVector exponent = rounded.viewAsIntegralLanes().sub(ROUNDER_BITS - 127)
                    .lanewise(VectorOperators.LSHL, 23);
            FloatVector e = p.mul((FloatVector) exponent.reinterpretShape(WIDE, 0)).blend(0f, tiny);
            e.intoArray(values, o);
            sum = sum.add(e);
        }
        sum.intoArray(acc, 0);
    }

    @Override
    public float max(float[] values, int off, int length) {
        int i = 0;
        float max = Float.NEGATIVE_INFINITY;
        if (length >= LANES) {
            // a compare and a blend, not FloatVector.max: C2 (JDK 17, AVX2) ran that lane-wise max as the Vector
            // API's boxed Java fallback inside the softmax (a third of a prefill's attention time at 8K). The blend
            // skips NaN, so a sum of the values (NaN when any is) sends such input to Math.max's scalar loop
            FloatVector acc = FloatVector.broadcast(WIDE, Float.NEGATIVE_INFINITY);
            FloatVector probe = FloatVector.zero(WIDE);
            for (int upper = length - LANES; i <= upper; i += LANES) {
                FloatVector v = FloatVector.fromArray(WIDE, values, off + i);
                acc = acc.blend(v, v.compare(VectorOperators.GT, acc));
                probe = probe.add(v);
            }
            for (int l = 0; l < LANES; l++) {
                max = Math.max(max, acc.lane(l));
            }
            if (Float.isNaN(probe.reduceLanes(VectorOperators.ADD))) {
                return ScalarKernels.INSTANCE.max(values, off, length);
            }
        }
        for (; i < length; i++) {
            max = Math.max(max, values[off + i]);
        }
        return max;
    }

    /** Selected rows summed per chunk, so that every column group of a row is read while the row is in L1. */
    private static final int ROW_CHUNK = 32;

    /**
     * Keeps four vectors of the output in registers while streaming over a chunk of {@link #ROW_CHUNK} selected rows,
     * instead of one load and store of the whole output per row as repeated {@link #axpy} calls would; the chunk's
     * rows are then still in L1 for the next column group (wide heads are more than one group).
     */
    @Override
    public void sumSelectedRows(float[] weights, float[] rows, int stride, int[] ids, int count, float[] out,
                                int outOff) {
        java.util.Arrays.fill(out, outOff, outOff + stride, 0f);
        for (int first = 0; first < count; first += ROW_CHUNK) {
            int last = Math.min(count, first + ROW_CHUNK);
            int c = 0;
            for (; c + 4 * LANES <= stride; c += 4 * LANES) {
                // a short loop in its own method (addWeightedRows' reason: no long loop carries vectors)
                sumSelectedSpan(weights, rows, stride, ids, first, last, out, outOff + c, c);
            }
            for (; c + LANES <= stride; c += LANES) {
                FloatVector acc = FloatVector.fromArray(WIDE, out, outOff + c);
                for (int j = first; j < last; j++) {
                    acc = FloatVector.fromArray(WIDE, rows, ids[j] * stride + c)
                            .fma(FloatVector.broadcast(WIDE, weights[j]), acc);
                }
                acc.intoArray(out, outOff + c);
            }
            for (; c < stride; c++) {
                float sum = out[outOff + c];
                for (int j = first; j < last; j++) {
                    sum += weights[j] * rows[ids[j] * stride + c];
                }
                out[outOff + c] = sum;
            }
        }
    }

    /** Rows [first, last) of {@link #sumSelectedRows} for the four vectors of lanes at column {@code c}. */
    private static void sumSelectedSpan(float[] weights, float[] rows, int stride, int[] ids, int first, int last,
                                        float[] out, int o, int c) {
        FloatVector acc0 = FloatVector.fromArray(WIDE, out, o);
        FloatVector acc1 = FloatVector.fromArray(WIDE, out, o + LANES);
        FloatVector acc2 = FloatVector.fromArray(WIDE, out, o + 2 * LANES);
        FloatVector acc3 = FloatVector.fromArray(WIDE, out, o + 3 * LANES);
        for (int j = first; j < last; j++) {
            FloatVector w = FloatVector.broadcast(WIDE, weights[j]);
            int r = ids[j] * stride + c;
            acc0 = FloatVector.fromArray(WIDE, rows, r).fma(w, acc0);
            acc1 = FloatVector.fromArray(WIDE, rows, r + LANES).fma(w, acc1);
            acc2 = FloatVector.fromArray(WIDE, rows, r + 2 * LANES).fma(w, acc2);
            acc3 = FloatVector.fromArray(WIDE, rows, r + 3 * LANES).fma(w, acc3);
        }
        acc0.intoArray(out, o);
        acc1.intoArray(out, o + LANES);
        acc2.intoArray(out, o + 2 * LANES);
        acc3.intoArray(out, o + 3 * LANES);
    }

    /** Four queries per pass, so each key row is loaded once for four dot products. */
    @Override
    public void dotBlock(float[] q, int qOff, int qStride, int queryCount, float[] rows, int stride, int length,
                         int firstRow, int rowCount, float[] out, int outOff, int outStride) {
        if (length < LANES) {
            VectorKernels.super.dotBlock(q, qOff, qStride, queryCount, rows, stride, length, firstRow, rowCount, out,
                    outOff, outStride);
            return;
        }
        int i = 0;
        for (; i + QUERY_TILE <= queryCount; i += QUERY_TILE) {
            int q0 = qOff + i * qStride;
            int q1 = q0 + qStride;
            int q2 = q1 + qStride;
            int q3 = q2 + qStride;
            int o = outOff + i * outStride;
            int r = 0;
            if (SUMS8 && length % LANES == 0) {
                // two rows per pass: eight accumulators, reduced together (see SUMS8; the same bits as one by one)
                for (; r + 2 <= rowCount; r += 2) {
                    int kA = (firstRow + r) * stride;
                    int kB = kA + stride;
                    FloatVector a0 = FloatVector.zero(WIDE);
                    FloatVector a1 = FloatVector.zero(WIDE);
                    FloatVector a2 = FloatVector.zero(WIDE);
                    FloatVector a3 = FloatVector.zero(WIDE);
                    FloatVector b0 = FloatVector.zero(WIDE);
                    FloatVector b1 = FloatVector.zero(WIDE);
                    FloatVector b2 = FloatVector.zero(WIDE);
                    FloatVector b3 = FloatVector.zero(WIDE);
                    for (int c = 0; c < length; c += LANES) {
                        FloatVector vA = FloatVector.fromArray(WIDE, rows, kA + c);
                        FloatVector vB = FloatVector.fromArray(WIDE, rows, kB + c);
                        FloatVector v = FloatVector.fromArray(WIDE, q, q0 + c);
                        a0 = v.fma(vA, a0);
                        b0 = v.fma(vB, b0);
                        v = FloatVector.fromArray(WIDE, q, q1 + c);
                        a1 = v.fma(vA, a1);
                        b1 = v.fma(vB, b1);
                        v = FloatVector.fromArray(WIDE, q, q2 + c);
                        a2 = v.fma(vA, a2);
                        b2 = v.fma(vB, b2);
                        v = FloatVector.fromArray(WIDE, q, q3 + c);
                        a3 = v.fma(vA, a3);
                        b3 = v.fma(vB, b3);
                    }
                    // the eight-accumulator reduction (see SUMS8), written out
                    FloatVector sumsH0 = a0.blend(b0, UPPER_HALF).add(b0.blend(a0, UPPER_HALF).rearrange(SWAP_HALVES));
                    FloatVector sumsH1 = a2.blend(b2, UPPER_HALF).add(b2.blend(a2, UPPER_HALF).rearrange(SWAP_HALVES));
                    FloatVector sumsH2 = a1.blend(b1, UPPER_HALF).add(b1.blend(a1, UPPER_HALF).rearrange(SWAP_HALVES));
                    FloatVector sumsH3 = a3.blend(b3, UPPER_HALF).add(b3.blend(a3, UPPER_HALF).rearrange(SWAP_HALVES));
                    FloatVector sumsP0 = sumsH0.blend(sumsH1, UPPER_PAIRS)
                            .add(sumsH1.blend(sumsH0, UPPER_PAIRS).rearrange(SWAP_PAIRS));
                    FloatVector sumsP1 = sumsH2.blend(sumsH3, UPPER_PAIRS)
                            .add(sumsH3.blend(sumsH2, UPPER_PAIRS).rearrange(SWAP_PAIRS));
                    FloatVector sums = sumsP0.blend(sumsP1, ODD_LANES)
                            .add(sumsP1.blend(sumsP0, ODD_LANES).rearrange(SWAP_NEIGHBOURS)); // [a0..a3 | b0..b3]
                    out[o + r] = sums.lane(0);
                    out[o + outStride + r] = sums.lane(1);
                    out[o + 2 * outStride + r] = sums.lane(2);
                    out[o + 3 * outStride + r] = sums.lane(3);
                    out[o + r + 1] = sums.lane(4);
                    out[o + outStride + r + 1] = sums.lane(5);
                    out[o + 2 * outStride + r + 1] = sums.lane(6);
                    out[o + 3 * outStride + r + 1] = sums.lane(7);
                }
            }
            for (; r < rowCount; r++) {
                int k = (firstRow + r) * stride;
                FloatVector acc0 = FloatVector.zero(WIDE);
                FloatVector acc1 = FloatVector.zero(WIDE);
                FloatVector acc2 = FloatVector.zero(WIDE);
                FloatVector acc3 = FloatVector.zero(WIDE);
                int c = 0;
                for (int upper = length - LANES; c <= upper; c += LANES) {
                    FloatVector vk = FloatVector.fromArray(WIDE, rows, k + c);
                    acc0 = FloatVector.fromArray(WIDE, q, q0 + c).fma(vk, acc0);
                    acc1 = FloatVector.fromArray(WIDE, q, q1 + c).fma(vk, acc1);
                    acc2 = FloatVector.fromArray(WIDE, q, q2 + c).fma(vk, acc2);
                    acc3 = FloatVector.fromArray(WIDE, q, q3 + c).fma(vk, acc3);
                }
                out[o + r] = dotScalar(q, q0, rows, k, c, length, sum(acc0));
                out[o + outStride + r] = dotScalar(q, q1, rows, k, c, length, sum(acc1));
                out[o + 2 * outStride + r] = dotScalar(q, q2, rows, k, c, length,
                        sum(acc2));
                out[o + 3 * outStride + r] = dotScalar(q, q3, rows, k, c, length,
                        sum(acc3));
            }
        }
        for (; i < queryCount; i++) {
            dotRows(q, qOff + i * qStride, rows, stride, 0, length, firstRow, rowCount, out, outOff + i * outStride);
        }
    }

    /** One 4 x 4 tile of {@link #dotTransposed}: queries at q0 (stride qStride), keys from ktOff on. */
    private static void transposedTile(float[] q, int qOff, int qStride, float[] kt, int ktOff, int ktStride,
                                       int length, float[] out, int outOff, int outStride) {
        int q0 = qOff;
        int q1 = q0 + qStride;
        int q2 = q1 + qStride;
        int q3 = q2 + qStride;
        FloatVector a00 = FloatVector.zero(WIDE), a01 = a00, a02 = a00, a03 = a00;
        FloatVector a10 = a00, a11 = a00, a12 = a00, a13 = a00;
        FloatVector a20 = a00, a21 = a00, a22 = a00, a23 = a00;
        FloatVector a30 = a00, a31 = a00, a32 = a00, a33 = a00;
        for (int e = 0, k = ktOff; e < length; e++, k += ktStride) {
            FloatVector k0 = FloatVector.fromArray(WIDE, kt, k);
            FloatVector k1 = FloatVector.fromArray(WIDE, kt, k + LANES);
            FloatVector k2 = FloatVector.fromArray(WIDE, kt, k + 2 * LANES);
            FloatVector k3 = FloatVector.fromArray(WIDE, kt, k + 3 * LANES);
            FloatVector b = FloatVector.broadcast(WIDE, q[q0 + e]);
            a00 = b.fma(k0, a00);
            a01 = b.fma(k1, a01);
            a02 = b.fma(k2, a02);
            a03 = b.fma(k3, a03);
            b = FloatVector.broadcast(WIDE, q[q1 + e]);
            a10 = b.fma(k0, a10);
            a11 = b.fma(k1, a11);
            a12 = b.fma(k2, a12);
            a13 = b.fma(k3, a13);
            b = FloatVector.broadcast(WIDE, q[q2 + e]);
            a20 = b.fma(k0, a20);
            a21 = b.fma(k1, a21);
            a22 = b.fma(k2, a22);
            a23 = b.fma(k3, a23);
            b = FloatVector.broadcast(WIDE, q[q3 + e]);
            a30 = b.fma(k0, a30);
            a31 = b.fma(k1, a31);
            a32 = b.fma(k2, a32);
            a33 = b.fma(k3, a33);
        }
int o = outOff;
        a00.intoArray(out, o);
        a01.intoArray(out, o + LANES);
        a02.intoArray(out, o + 2 * LANES);
        a03.intoArray(out, o + 3 * LANES);
        o += outStride;
        a10.intoArray(out, o);
        a11.intoArray(out, o + LANES);
        a12.intoArray(out, o + 2 * LANES);
        a13.intoArray(out, o + 3 * LANES);
        o += outStride;
        a20.intoArray(out, o);
        a21.intoArray(out, o + LANES);
        a22.intoArray(out, o + 2 * LANES);
        a23.intoArray(out, o + 3 * LANES);
        o += outStride;
        a30.intoArray(out, o);
        a31.intoArray(out, o + LANES);
        a32.intoArray(out, o + 2 * LANES);
        a33.intoArray(out, o + 3 * LANES);
    }

    /**
     * Lanes are keys, so no horizontal sums: a tile of four queries by four key vectors keeps sixteen accumulators in
     * registers while stepping down the dimensions; each step loads four key vectors and broadcasts four query
     * values. A lane's chain is the default method's, so the bits are the same.
     */
    @Override
    public void dotTransposed(float[] q, int qOff, int qStride, int queryCount, float[] kt, int ktOff, int ktStride,
                              int length, int keyCount, float[] out, int outOff, int outStride) {
        int j = 0;
        for (; j + 4 * LANES <= keyCount; j += 4 * LANES) {
            int i = 0;
            for (; i + 4 <= queryCount; i += 4) {
                // the 4 x 4 tile in its own method: a long loop carrying vectors in one call was compiled boxed in
                // some runs (addWeightedRows' reason)
                transposedTile(q, qOff + i * qStride, qStride, kt, ktOff + j, ktStride, length, out,
                        outOff + i * outStride + j, outStride);
            }
            for (; i < queryCount; i++) {
                int qi = qOff + i * qStride;
                FloatVector a0 = FloatVector.zero(WIDE), a1 = a0, a2 = a0, a3 = a0;
                for (int e = 0, k = ktOff + j; e < length; e++, k += ktStride) {
                    FloatVector b = FloatVector.broadcast(WIDE, q[qi + e]);
                    a0 = b.fma(FloatVector.fromArray(WIDE, kt, k), a0);
                    a1 = b.fma(FloatVector.fromArray(WIDE, kt, k + LANES), a1);
                    a2 = b.fma(FloatVector.fromArray(WIDE, kt, k + 2 * LANES), a2);
                    a3 = b.fma(FloatVector.fromArray(WIDE, kt, k + 3 * LANES), a3);
                }
                int o = outOff + i * outStride + j;
                a0.intoArray(out, o);
                a1.intoArray(out, o + LANES);
                a2.intoArray(out, o + 2 * LANES);
                a3.intoArray(out, o + 3 * LANES);
            }
        }
        for (; j + LANES <= keyCount; j += LANES) {
            for (int i = 0; i < queryCount; i++) {
                int qi = qOff + i * qStride;
                FloatVector a = FloatVector.zero(WIDE);
                for (int e = 0, k = ktOff + j; e < length; e++, k += ktStride) {
                    a = FloatVector.broadcast(WIDE, q[qi + e]).fma(FloatVector.fromArray(WIDE, kt, k), a);
                }
                a.intoArray(out, outOff + i * outStride + j);
            }
        }
        for (; j < keyCount; j++) {
            for (int i = 0; i < queryCount; i++) {
                int qi = qOff + i * qStride;
                float s = 0f;
                for (int e = 0, k = ktOff + j; e < length; e++, k += ktStride) {
                    s = Math.fma(q[qi + e], kt[k], s);
                }
                out[outOff + i * outStride + j] = s;
            }
        }
    }

    /** Each value chunk is loaded once and added to four queries' output chunks held in registers. */
    @Override
    public void addWeightedRows(float[] w, int wOff, int wStride, int queryCount, float[] rows, int stride,
                                int length, int firstRow, int rowCount, float[] out, int outOff, int outStride) {
        int i = 0;
        for (; i + QUERY_TILE <= queryCount; i += QUERY_TILE) {
            int w0 = wOff + i * wStride;
            int o0 = outOff + i * outStride;
            int c = 0;
            for (; c + 2 * LANES <= length; c += 2 * LANES) {
                // two column chunks per pass: eight independent accumulator chains and each weight broadcast
                // serves both (four chains were bound by the FMA latency, 11-12 against 47 GMAC/s for
                // dotTransposed in a one-thread micro-benchmark at d = 64); every output element still adds its
                // rows in row order, so the bits are the one-chunk loop's
                for (int r0 = 0; r0 < rowCount; r0 += ROW_SPAN) {
                    addWeightedSpanPair(w, w0, wStride, rows, stride, firstRow, r0,
                            Math.min(rowCount, r0 + ROW_SPAN), out, o0 + c, outStride, c);
                }
            }
            for (; c + LANES <= length; c += LANES) {
                // the accumulators go through out every ROW_SPAN rows, not through vectors carried by the whole
                // row loop, the loop shape C2 on JDK 17 compiled boxed in the other kernels; the adds are the same,
                // in the same order. This alone did not unbox the 512-bit species here (100 GB per line in an
                // 8K-context benchmark): the 256-bit cap of WIDE did
                for (int r0 = 0; r0 < rowCount; r0 += ROW_SPAN) {
                    addWeightedSpan(w, w0, wStride, rows, stride, firstRow, r0, Math.min(rowCount, r0 + ROW_SPAN),
                            out, o0 + c, outStride, c);
                }
            }
            for (; c < length; c++) {
                for (int t = 0; t < QUERY_TILE; t++) {
                    float sum = out[o0 + t * outStride + c];
                    for (int r = 0; r < rowCount; r++) {
                        sum += w[w0 + t * wStride + r] * rows[(firstRow + r) * stride + c];
                    }
                    out[o0 + t * outStride + c] = sum;
                }
            }
        }
        for (; i < queryCount; i++) {
            for (int r = 0; r < rowCount; r++) {
                axpy(w[wOff + i * wStride + r], rows, (firstRow + r) * stride, out, outOff + i * outStride, length);
            }
        }
    }

    /**
     * Rows of {@link #addWeightedRows} per load and store of its accumulators: 64 measured 34 against 15 GMAC/s for 8
     * (one thread, 4 queries, d = 64, 128-row chunks; each span's store and reload sat on the accumulator chains).
     */
    private static final int ROW_SPAN = 64;

    /**
     * Rows [from, to) of a four-query {@link #addWeightedRows} tile, for the lanes at columns {@code c} and
     * {@code c + LANES}: {@link #addWeightedSpan}'s operations for both chunks, interleaved.
     */
    private static void addWeightedSpanPair(float[] w, int w0, int wStride, float[] rows, int stride, int firstRow,
                                            int from, int to, float[] out, int o, int outStride, int c) {
        FloatVector acc0 = FloatVector.fromArray(WIDE, out, o);
        FloatVector acc1 = FloatVector.fromArray(WIDE, out, o + outStride);
        FloatVector acc2 = FloatVector.fromArray(WIDE, out, o + 2 * outStride);
        FloatVector acc3 = FloatVector.fromArray(WIDE, out, o + 3 * outStride);
        FloatVector acc4 = FloatVector.fromArray(WIDE, out, o + LANES);
        FloatVector acc5 = FloatVector.fromArray(WIDE, out, o + outStride + LANES);
        FloatVector acc6 = FloatVector.fromArray(WIDE, out, o + 2 * outStride + LANES);
        FloatVector acc7 = FloatVector.fromArray(WIDE, out, o + 3 * outStride + LANES);
        for (int r = from; r < to; r++) {
            int at = (firstRow + r) * stride + c;
            FloatVector v = FloatVector.fromArray(WIDE, rows, at);
            FloatVector u = FloatVector.fromArray(WIDE, rows, at + LANES);
            FloatVector b0 = FloatVector.broadcast(WIDE, w[w0 + r]);
            FloatVector b1 = FloatVector.broadcast(WIDE, w[w0 + wStride + r]);
            FloatVector b2 = FloatVector.broadcast(WIDE, w[w0 + 2 * wStride + r]);
            FloatVector b3 = FloatVector.broadcast(WIDE, w[w0 + 3 * wStride + r]);
            acc0 = v.fma(b0, acc0);
            acc1 = v.fma(b1, acc1);
            acc2 = v.fma(b2, acc2);
            acc3 = v.fma(b3, acc3);
            acc4 = u.fma(b0, acc4);
            acc5 = u.fma(b1, acc5);
            acc6 = u.fma(b2, acc6);
            acc7 = u.fma(b3, acc7);
        }
        acc0.intoArray(out, o);
        acc1.intoArray(out, o + outStride);
        acc2.intoArray(out, o + 2 * outStride);
        acc3.intoArray(out, o + 3 * outStride);
        acc4.intoArray(out, o + LANES);
        acc5.intoArray(out, o + outStride + LANES);
        acc6.intoArray(out, o + 2 * outStride + LANES);
        acc7.intoArray(out, o + 3 * outStride + LANES);
    }

    /** Rows [from, to) of a four-query {@link #addWeightedRows} tile, for the lanes at column {@code c}. */
    private static void addWeightedSpan(float[] w, int w0, int wStride, float[] rows, int stride, int firstRow,
                                        int from, int to, float[] out, int o, int outStride, int c) {
        FloatVector acc0 = FloatVector.fromArray(WIDE, out, o);
        FloatVector acc1 = FloatVector.fromArray(WIDE, out, o + outStride);
        FloatVector acc2 = FloatVector.fromArray(WIDE, out, o + 2 * outStride);
        FloatVector acc3 = FloatVector.fromArray(WIDE, out, o + 3 * outStride);
        for (int r = from; r < to; r++) {
            FloatVector v = FloatVector.fromArray(WIDE, rows, (firstRow + r) * stride + c);
            acc0 = v.fma(FloatVector.broadcast(WIDE, w[w0 + r]), acc0);
            acc1 = v.fma(FloatVector.broadcast(WIDE, w[w0 + wStride + r]), acc1);
            acc2 = v.fma(FloatVector.broadcast(WIDE, w[w0 + 2 * wStride + r]), acc2);
            acc3 = v.fma(FloatVector.broadcast(WIDE, w[w0 + 3 * wStride + r]), acc3);
        }
        acc0.intoArray(out, o);
        acc1.intoArray(out, o + outStride);
        acc2.intoArray(out, o + 2 * outStride);
        acc3.intoArray(out, o + 3 * outStride);
    }

    /**
     * Eight values per pass: the shorts sign-extend to ints; bfloat16 is the high half of a float; binary16 moves its
     * exponent and mantissa into place and scales by 2^112, which is exact and also right for subnormals, with
     * infinities and NaNs (exponent 31) blended in.
     */
    @Override
    public void halfToFloat(short[] src, int srcOff, float[] dst, int dstOff, int length, boolean brain) {
        int i = 0;
        if (INTERLEAVE) {
            // one loop per format: a vector merged from two branches is a phi that C2 (JDK 17) cannot keep unboxed
            // once this method is inlined into a caller, and every store then ran the Vector API's Java fallback
            int bound = length - (length % I256.length());
            if (brain) {
                for (; i < bound; i += I256.length()) {
                    floats(widen(src, srcOff + i).lanewise(VectorOperators.LSHL, 16)).intoArray(dst, dstOff + i);
                }
            } else {
                for (; i < bound; i += I256.length()) {
                    IntVector v = widen(src, srcOff + i);
                    IntVector magnitude = v.and(0x7fff);
                    IntVector shifted = magnitude.lanewise(VectorOperators.LSHL, 13);
                    IntVector finite = (IntVector) floats(shifted).mul(0x1p112f).reinterpretShape(I256, 0);
                    IntVector bits = finite.blend(shifted.or(0x7f800000), magnitude.compare(VectorOperators.GE, 0x7c00));
                    floats(bits.or(v.and(0x80000000))).intoArray(dst, dstOff + i);
                }
            }
        }
        for (; i < length; i++) {
            dst[dstOff + i] = brain ? HalfBits.bfloat16ToFloat(src[srcOff + i]) : HalfBits.toFloat(src[srcOff + i]);
        }
    }

    /**
     * The bits of eight ints as floats. The species are named, not derived ({@code reinterpretAsFloats},
     * {@code convert(op, 0)}): a derived species is not a constant for C2 (JDK 17) once the kernel is inlined into a
     * large caller, and the vector operations then ran as the Vector API's Java fallback.
     */
    private static FloatVector floats(IntVector bits) {
        return (FloatVector) bits.reinterpretShape(F256, 0);
    }

    /** Eight shorts sign-extended to ints. */
    private static IntVector widen(short[] src, int off) {
        return (IntVector) ShortVector.fromArray(ShortVector.SPECIES_128, src, off)
                .convertShape(VectorOperators.S2I, I256, 0);
    }
}
