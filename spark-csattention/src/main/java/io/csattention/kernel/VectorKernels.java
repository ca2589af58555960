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
     * Dequantizes int8 code blocks into floats: {@code out[outOff + b * blockSize + i] = scales[b] * code - mins[b]}
     * (a product rounded to float, then a difference; {@code mins} null: no offset) with code
     * {@code codes[codesOff + b * blockStride + i]}, for b in [0, blocks) and i in [0, blockSize). Every
     * implementation gives the same bits.
     */
    default void dequantizeCodeBlocks(byte[] codes, int codesOff, int blockStride, int blockSize, float[] scales,
                                      float[] mins, float[] out, int outOff, int blocks) {
        for (int b = 0; b < blocks; b++) {
            int c = codesOff + b * blockStride;
            int o = outOff + b * blockSize;
            float scale = scales[b];
            float min = mins == null ? 0f : mins[b];
            for (int i = 0; i < blockSize; i++) {
                out[o + i] = scale * codes[c + i] - min;
            }
        }
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
}
