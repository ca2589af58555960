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
     * The dot product of a quantized weight row with {@code x}, dequantized in registers: the row is {@code blocks}
     * blocks of {@code blockSize} int8 codes, block b's at {@code codes[codesOff + b * blockStride ..)}, standing for
     * {@code scales[b] * code - mins[b]} ({@code mins} null: no offset). Returns
     * {@code sum_b (scales[b] * sum_i codes[..i] * x[xOff + b * blockSize + i] - mins[b] * sum_i x[xOff + b * blockSize + i])},
     * each block's sums first, then the blocks in order (the scalar reference's order; a faster implementation may
     * reassociate within the block and across its vector lanes, the same way on every call).
     */
    default float dotCodeBlocks(byte[] codes, int codesOff, int blockStride, int blockSize, float[] scales,
                                float[] mins, float[] x, int xOff, int blocks) {
        float total = 0f;
        for (int b = 0; b < blocks; b++) {
            int c = codesOff + b * blockStride;
            int xb = xOff + b * blockSize;
            float dot = 0f;
            float sum = 0f;
            for (int i = 0; i < blockSize; i++) {
                dot += codes[c + i] * x[xb + i];
                sum += x[xb + i];
            }
            total += scales[b] * dot - (mins == null ? 0f : mins[b] * sum);
        }
        return total;
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
