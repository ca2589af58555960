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

    /** {@code y[yOff+i] += alpha * x[xOff+i]} for i in [0, length). */
    void axpy(float alpha, float[] x, int xOff, float[] y, int yOff, int length);
}
