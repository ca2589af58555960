package io.csattention.core;

import java.io.Serializable;

/** A dense row-major float32 matrix [rows, cols]: the one tensor type of the core. */
public record FloatMatrix(int rows, int cols, float[] data) implements Serializable {

    public FloatMatrix {
        Check.nonNegative(rows, "rows");
        Check.positive(cols, "cols");
        Check.that(data.length >= (long) rows * cols, "data must hold rows*cols=" + ((long) rows * cols) + " floats",
                "data.length", data.length);
    }

    public static FloatMatrix zeros(int rows, int cols) {
        return new FloatMatrix(rows, cols, new float[rows * cols]);
    }

    public int offset(int row) {
        return row * cols;
    }

    public float get(int row, int col) {
        return data[row * cols + col];
    }

    public float[] row(int row) {
        float[] out = new float[cols];
        System.arraycopy(data, row * cols, out, 0, cols);
        return out;
    }

    /** Rows [from, to) as a new matrix. */
    public FloatMatrix rows(int from, int to) {
        float[] out = new float[(to - from) * cols];
        System.arraycopy(data, from * cols, out, 0, out.length);
        return new FloatMatrix(to - from, cols, out);
    }
}
