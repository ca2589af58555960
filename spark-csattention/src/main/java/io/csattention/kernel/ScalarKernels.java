package io.csattention.kernel;

/** The reference implementation: plain loops, the semantics every other backend is tested against. */
public final class ScalarKernels implements VectorKernels {

    public static final ScalarKernels INSTANCE = new ScalarKernels();

    private ScalarKernels() {
    }

    @Override
    public String name() {
        return "scalar";
    }

    @Override
    public float dot(float[] a, int aOff, float[] b, int bOff, int length) {
        float sum = 0f;
        for (int i = 0; i < length; i++) {
            sum += a[aOff + i] * b[bOff + i];
        }
        return sum;
    }

    @Override
    public float squaredDistance(float[] a, int aOff, float[] b, int bOff, int length) {
        float sum = 0f;
        for (int i = 0; i < length; i++) {
            float diff = a[aOff + i] - b[bOff + i];
            sum += diff * diff;
        }
        return sum;
    }

    @Override
    public void dotRows(float[] x, int xOff, float[] rows, int stride, int colOff, int length,
                        int firstRow, int rowCount, float[] out, int outOff) {
        for (int r = 0; r < rowCount; r++) {
            out[outOff + r] = dot(x, xOff, rows, (firstRow + r) * stride + colOff, length);
        }
    }

    @Override
    public void dotSelectedRows(float[] x, int xOff, float[] rows, int stride, int[] ids, int count, float[] out) {
        for (int j = 0; j < count; j++) {
            out[j] = dot(x, xOff, rows, ids[j] * stride, stride);
        }
    }

    @Override
    public void axpy(float alpha, float[] x, int xOff, float[] y, int yOff, int length) {
        for (int i = 0; i < length; i++) {
            y[yOff + i] += alpha * x[xOff + i];
        }
    }
}
