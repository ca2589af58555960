package io.csattention.kernel;

/**
 * The hot loops of index build and decode, behind one interface so that a scalar reference, a SIMD
 * implementation and a GPU backend can be swapped. Arrays are row-major; offsets are in floats.
 *
 * <p>Implementations must be stateless and thread-safe. Results may differ from the scalar
 * reference only by floating-point reassociation.
 */
public interface VectorKernels {

    /** A short name for logs and reports: {@code scalar}, {@code simd}. */
    String name();

    /** {@code sum_i a[aOff+i] * b[bOff+i]} for i in [0, length). */
    float dot(float[] a, int aOff, float[] b, int bOff, int length);

    /** {@code sum_i (a[aOff+i] - b[bOff+i])^2} for i in [0, length). */
    float squaredDistance(float[] a, int aOff, float[] b, int bOff, int length);

    /**
     * Partial dot products of one vector with a block of rows: for each row r in [firstRow, firstRow+rowCount),
     * {@code out[outOff + r - firstRow] = dot(x[xOff .. xOff+length), rows[r*stride + colOff .. +length))}.
     */
    void dotRows(float[] x, int xOff, float[] rows, int stride, int colOff, int length,
                 int firstRow, int rowCount, float[] out, int outOff);

    /**
     * Dot products of one vector with selected rows: {@code out[j] = dot(x, rows[ids[j]*stride .. +length))}
     * for j in [0, count).
     */
    void dotSelectedRows(float[] x, int xOff, float[] rows, int stride, int[] ids, int count, float[] out);

    /**
     * Dot products of one vector with selected int8-coded rows, each row scaled by its own factor:
     * {@code out[outOff + j] = scales[id] * dot(x, codes[id*stride .. +stride))} with {@code id = ids[idsOff + j]},
     * for j in [0, count). The re-scoring step of csattention, over the {@code KeySketch} of the keys. A row's result
     * does not depend on which other rows are in the call.
     */
    default void dotSelectedCodes(float[] x, int xOff, byte[] codes, int stride, float[] scales, int[] ids,
                                  int idsOff, int count, float[] out, int outOff) {
        for (int j = 0; j < count; j++) {
            int id = ids[idsOff + j];
            float sum = 0f;
            for (int i = 0; i < stride; i++) {
                sum += x[xOff + i] * codes[id * stride + i];
            }
            out[outOff + j] = sum * scales[id];
        }
    }

    /**
     * {@link #dotSelectedCodes} for {@code queries} vectors at once, the q-th at {@code xOff + q * xStride}, its
     * results in {@code out[q]} from {@code outOff}: each selected row is read once for all of them (the re-scoring of
     * a grouped-query head's shared selection). Every result has the bits {@link #dotSelectedCodes} gives it alone.
     */
    default void dotSelectedCodesMany(float[] x, int xOff, int xStride, int queries, byte[] codes, int stride,
                                      float[] scales, int[] ids, int idsOff, int count, float[][] out, int outOff) {
        for (int q = 0; q < queries; q++) {
            dotSelectedCodes(x, xOff + q * xStride, codes, stride, scales, ids, idsOff, count, out[q], outOff);
        }
    }

    /**
     * Quest's page bounds: {@code out[outOff + p] = sum_c max(x[xOff+c] * low[r*length + c], x[xOff+c] * high[r*length +
     * c])} with r = firstRow + p, for p in [0, rowCount) and c in [0, length).
     */
    default void boundRows(float[] x, int xOff, float[] low, float[] high, int length, int firstRow, int rowCount,
                           float[] out, int outOff) {
        for (int p = 0; p < rowCount; p++) {
            int o = (firstRow + p) * length;
            float bound = 0f;
            for (int c = 0; c < length; c++) {
                float q = x[xOff + c];
                bound += Math.max(q * low[o + c], q * high[o + c]);
            }
            out[outOff + p] = bound;
        }
    }

    /**
     * The dot product of int8 code blocks, each with a scale, with x, without forming the dequantized row:
     * {@code sum over b of scales[b] * (sum over i of codes[codesOff + b * blockStride + i] * x[xOff + b * blockSize
     * + i])} for b in [0, blocks), i in [0, blockSize). The order is fixed: a block's partial sum is formed first
     * (from its first element on), then multiplied by its scale and added to the running total, block after block. Implementations may differ from each other in the bits of a result, but each
     * gives the same bits for the same inputs, and {@link #dotCodesTokens} gives exactly these.
     */
    default float dotCodes(byte[] codes, int codesOff, int blockStride, int blockSize, float[] scales, float[] x,
                           int xOff, int blocks) {
        float total = 0f;
        for (int b = 0; b < blocks; b++) {
            int c = codesOff + b * blockStride;
            int o = xOff + b * blockSize;
            float partial = codes[c] * x[o];
            for (int i = 1; i < blockSize; i++) {
                partial += codes[c + i] * x[o + i];
            }
            total += partial * scales[b];
        }
        return total;
    }

    /**
     * {@link #dotCodes} of one row of code blocks against a block of tokens: {@code out[outOff + t * outStride] =
     * dotCodes(codes, ..., x, xOff + t * xStride, blocks)} for t in [0, tokens), the same bits as one token at a time
     * (a faster implementation widens the codes once, into {@code scratch} of at least {@code blocks * blockSize}
     * floats, for several tokens).
     */
    default void dotCodesTokens(byte[] codes, int codesOff, int blockStride, int blockSize, float[] scales,
                                float[] x, int xOff, int xStride, int tokens, float[] out, int outOff, int outStride,
                                int blocks, float[] scratch) {
        for (int t = 0; t < tokens; t++) {
            out[outOff + t * outStride] = dotCodes(codes, codesOff, blockStride, blockSize, scales, x,
                    xOff + t * xStride, blocks);
        }
    }

    /**
     * Whether {@link #dotCodes32} reads x in this kernel set's interleaved order ({@link #interleave}) rather than
     * in element order.
     */
    default boolean interleavesBlocks() {
        return false;
    }

    /**
     * x [length] in the order {@link #dotCodes32} reads it, into {@code out}: element order here; the SIMD kernels
     * interleave each block of 32 by fours ({@code out[b + 8 k + j] = x[b + 4 j + k]}, j < 8, k < 4), so that the
     * four bytes of a 32-bit lane are four consecutive elements. A matrix product reorders each token once.
     */
    default void interleave(float[] x, int xOff, int length, float[] out, int outOff) {
        System.arraycopy(x, xOff, out, outOff, length);
    }

    /**
     * {@link #dotCodes} of blocks of 32 int8 codes read from a buffer ({@code codes.get(codesOff + b * blockStride
     * + i)}, e.g. a Q8_0 row in place, its codes 2 bytes after each block's start) against x in {@link #interleave}d
     * order: {@code sum over b of scales[b] * (sum over i of code(b, i) * x(b, i))}, a block's partial first, then
     * scaled and added to the total, block after block. {@code scales} null: Q8_0 blocks, each block's scale the
     * little-endian float16 in the two bytes before its codes, read as the block is (a row is then read once, its
     * memory loads overlapping the arithmetic). Each implementation gives the same bits for the same inputs and
     * {@link #dotCodes32Tokens} gives exactly these.
     */
    default float dotCodes32(java.nio.ByteBuffer codes, int codesOff, int blockStride, float[] scales, float[] x,
                             int xOff, int blocks) {
        float total = 0f;
        for (int b = 0; b < blocks; b++) {
            int c = codesOff + b * blockStride;
            int o = xOff + b * 32;
            float partial = codes.get(c) * x[o];
            for (int i = 1; i < 32; i++) {
                partial += codes.get(c + i) * x[o + i];
            }
            total += partial * (scales != null ? scales[b]
                    : HalfBits.toFloat(codes.get(c - 2), codes.get(c - 1)));
        }
        return total;
    }

    /**
     * {@link #dotCodes32} of one row against {@code tokens} rows of interleaved x: {@code out[outOff + t *
     * outStride] = dotCodes32(codes, ..., x, xOff + t * xStride, blocks)}, the same bits (a faster implementation
     * widens the codes once into {@code scratch}, at least {@code 32 * blocks} floats, for several tokens);
     * {@code scales} must not be null.
     */
    default void dotCodes32Tokens(java.nio.ByteBuffer codes, int codesOff, int blockStride, float[] scales,
                                  float[] x, int xOff, int xStride, int tokens, float[] out, int outOff, int outStride,
                                  int blocks, float[] scratch) {
        for (int t = 0; t < tokens; t++) {
            out[outOff + t * outStride] = dotCodes32(codes, codesOff, blockStride, scales, x, xOff + t * xStride,
                    blocks);
        }
    }

    /**
     * {@link #dotCodes32Tokens} of two rows (A and B, each in its own buffer) against the same tokens, the same bits
     * as two calls (a faster implementation loads each x vector once for both rows); {@code scratchA} and
     * {@code scratchB} are each at least {@code 32 * blocks} floats.
     */
    default void dotCodes32TokensPair(java.nio.ByteBuffer codesA, int codesOffA, java.nio.ByteBuffer codesB,
                                      int codesOffB, int blockStride, float[] scalesA, float[] scalesB, float[] x,
                                      int xOff, int xStride, int tokens, float[] out, int outOffA, int outOffB,
                                      int outStride, int blocks, float[] scratchA, float[] scratchB) {
        dotCodes32Tokens(codesA, codesOffA, blockStride, scalesA, x, xOff, xStride, tokens, out, outOffA, outStride,
                blocks, scratchA);
        dotCodes32Tokens(codesB, codesOffB, blockStride, scalesB, x, xOff, xStride, tokens, out, outOffB, outStride,
                blocks, scratchB);
    }

    /**
     * One weight row against a block of tokens: {@code out[outOff + t * outStride] = dot(row, rowOff, x, xOff + t *
     * xStride, length)} for t in [0, tokens), each exactly as {@link #dot} computes it, so a token's result does not
     * depend on the others in the block (a faster implementation reads the row once for several tokens).
     */
    default void dotTokens(float[] row, int rowOff, float[] x, int xOff, int xStride, int tokens, int length,
                           float[] out, int outOff, int outStride) {
        for (int t = 0; t < tokens; t++) {
            out[outOff + t * outStride] = dot(row, rowOff, x, xOff + t * xStride, length);
        }
    }

    /** {@code y[yOff+i] += alpha * x[xOff+i]} for i in [0, length). */
    void axpy(float alpha, float[] x, int xOff, float[] y, int yOff, int length);

    /**
     * The softmax numerators: {@code values[off+i] = exp(values[off+i] - shift)} for i in [0, length); returns their
     * sum.
     */
    default float expShifted(float[] values, int off, int length, float shift) {
        float sum = 0f;
        for (int i = off; i < off + length; i++) {
            values[i] = (float) Math.exp(values[i] - shift);
            sum += values[i];
        }
        return sum;
    }

    /** {@code max_i values[off+i]} for i in [0, length); negative infinity when empty. */
    default float max(float[] values, int off, int length) {
        float max = Float.NEGATIVE_INFINITY;
        for (int i = off; i < off + length; i++) {
            max = Math.max(max, values[i]);
        }
        return max;
    }

    /**
     * Weighted sum of selected rows: {@code out[outOff+c] = sum_j weights[j] * rows[ids[j]*stride + c]} for c in
     * [0, stride) and j in [0, count) (overwrites {@code out}). The P*V step of sparse attention.
     */
    default void sumSelectedRows(float[] weights, float[] rows, int stride, int[] ids, int count, float[] out,
                                 int outOff) {
        java.util.Arrays.fill(out, outOff, outOff + stride, 0f);
        for (int j = 0; j < count; j++) {
            axpy(weights[j], rows, ids[j] * stride, out, outOff, stride);
        }
    }

    /**
     * Scores of a block of queries against a block of rows (the Q*K^T tile of blocked attention):
     * {@code out[outOff + i*outStride + r] = dot(q[qOff + i*qStride ..+length), rows[(firstRow+r)*stride ..+length))}
     * for i in [0, queryCount) and r in [0, rowCount).
     */
    default void dotBlock(float[] q, int qOff, int qStride, int queryCount, float[] rows, int stride, int length,
                          int firstRow, int rowCount, float[] out, int outOff, int outStride) {
        for (int i = 0; i < queryCount; i++) {
            dotRows(q, qOff + i * qStride, rows, stride, 0, length, firstRow, rowCount, out, outOff + i * outStride);
        }
    }

    /**
     * Scores of a block of queries against keys stored transposed (the Q*K^T tile of prefill attention):
     * {@code out[outOff + i*outStride + j] = sum_e q[qOff + i*qStride + e] * kt[ktOff + e*ktStride + j]} for i in
     * [0, queryCount), j in [0, keyCount), summed over e in [0, length) in order, one fused multiply-add at a time
     * from 0. Each score depends only on its query and key, and every kernel set gives the same bits.
     */
    default void dotTransposed(float[] q, int qOff, int qStride, int queryCount, float[] kt, int ktOff, int ktStride,
                               int length, int keyCount, float[] out, int outOff, int outStride) {
        for (int i = 0; i < queryCount; i++) {
            int qi = qOff + i * qStride;
            for (int j = 0; j < keyCount; j++) {
                float s = 0f;
                for (int e = 0; e < length; e++) {
                    s = Math.fma(q[qi + e], kt[ktOff + e * ktStride + j], s);
                }
                out[outOff + i * outStride + j] = s;
            }
        }
    }

    /**
     * Adds weighted rows to a block of outputs (the P*V tile of blocked attention):
     * {@code out[outOff + i*outStride + c] += sum_r w[wOff + i*wStride + r] * rows[(firstRow+r)*stride + c]}
     * for i in [0, queryCount), r in [0, rowCount) and c in [0, length).
     */
    default void addWeightedRows(float[] w, int wOff, int wStride, int queryCount, float[] rows, int stride,
                                 int length, int firstRow, int rowCount, float[] out, int outOff, int outStride) {
        for (int i = 0; i < queryCount; i++) {
            for (int r = 0; r < rowCount; r++) {
                axpy(w[wOff + i * wStride + r], rows, (firstRow + r) * stride, out, outOff + i * outStride, length);
            }
        }
    }

    /**
     * Widens half-precision values {@code src[srcOff .. srcOff+length)} to floats in {@code dst[dstOff ..)}:
     * bfloat16 when {@code brain}, IEEE binary16 otherwise. Exact (every half value is a float).
     */
    default void halfToFloat(short[] src, int srcOff, float[] dst, int dstOff, int length, boolean brain) {
        for (int i = 0; i < length; i++) {
            dst[dstOff + i] = brain ? HalfBits.bfloat16ToFloat(src[srcOff + i]) : HalfBits.toFloat(src[srcOff + i]);
        }
    }
}
