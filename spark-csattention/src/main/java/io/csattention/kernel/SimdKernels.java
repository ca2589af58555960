package io.csattention.kernel;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The same loops with {@code jdk.incubator.vector}: full lanes with fused multiply-add, then a scalar tail.
 * Loaded only by {@link Kernels} after it has checked that the incubator module is present.
 */
final class SimdKernels implements VectorKernels {

    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;

    @Override
    public String name() {
        return "simd";
    }

    @Override
    public float dot(float[] a, int aOff, float[] b, int bOff, int length) {
        int lanes = SPECIES.length();
        int upper = length - length % lanes;
        FloatVector acc = FloatVector.zero(SPECIES);
        int i = 0;
        for (; i < upper; i += lanes) {
            FloatVector va = FloatVector.fromArray(SPECIES, a, aOff + i);
            FloatVector vb = FloatVector.fromArray(SPECIES, b, bOff + i);
            acc = va.fma(vb, acc);
        }
        float sum = acc.reduceLanes(VectorOperators.ADD);
        for (; i < length; i++) {
            sum += a[aOff + i] * b[bOff + i];
        }
        return sum;
    }

    @Override
    public float squaredDistance(float[] a, int aOff, float[] b, int bOff, int length) {
        int lanes = SPECIES.length();
        int upper = length - length % lanes;
        FloatVector acc = FloatVector.zero(SPECIES);
        int i = 0;
        for (; i < upper; i += lanes) {
            FloatVector diff = FloatVector.fromArray(SPECIES, a, aOff + i)
                    .sub(FloatVector.fromArray(SPECIES, b, bOff + i));
            acc = diff.fma(diff, acc);
        }
        float sum = acc.reduceLanes(VectorOperators.ADD);
        for (; i < length; i++) {
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
        int lanes = SPECIES.length();
        int upper = length - length % lanes;
        int i = 0;
        for (; i < upper; i += lanes) {
            FloatVector vx = FloatVector.fromArray(SPECIES, x, xOff + i);
            FloatVector vy = FloatVector.fromArray(SPECIES, y, yOff + i);
            vx.fma(FloatVector.broadcast(SPECIES, alpha), vy).intoArray(y, yOff + i);
        }
        for (; i < length; i++) {
            y[yOff + i] += alpha * x[xOff + i];
        }
    }
}
