package io.csattention.format;

/**
 * A NumPy array read from or written to a {@code .npy} file: its shape and its values widened to double-free Java
 * arrays (float data as float32, integer data as long).
 */
public record NpyArray(long[] shape, String dtype, float[] floats, long[] longs) {

    public int rank() {
        return shape.length;
    }

    public int rows() {
        return (int) shape[0];
    }

    public int cols() {
        return shape.length > 1 ? (int) shape[1] : 1;
    }

    public boolean isFloating() {
        return floats != null;
    }
}
