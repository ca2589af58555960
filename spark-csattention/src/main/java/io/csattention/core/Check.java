package io.csattention.core;

/**
 * Argument checks at the boundary of the library. Every message says what is wrong, the actual value, and what
 * was expected, in the form {@code sparsity must be in (0, 1); sparsity=1.5}.
 */
public final class Check {

    private Check() {
    }

    public static void that(boolean condition, String requirement, String name, Object actual) {
        if (!condition) {
            throw new IllegalArgumentException(requirement + "; " + name + "=" + actual);
        }
    }

    public static double openUnit(double value, String name) {
        that(value > 0 && value < 1, name + " must be in (0, 1)", name, value);
        return value;
    }

    public static int positive(int value, String name) {
        that(value > 0, name + " must be > 0", name, value);
        return value;
    }

    public static int nonNegative(int value, String name) {
        that(value >= 0, name + " must be >= 0", name, value);
        return value;
    }

    /** Fails on the first NaN or infinity, naming the row and column. */
    public static void finite(float[] data, int rows, int cols, String name) {
        for (int i = 0; i < rows * cols; i++) {
            if (!Float.isFinite(data[i])) {
                throw new IllegalArgumentException(name + " must hold finite values; " + name + "[" + (i / cols) + ","
                        + (i % cols) + "]=" + data[i]);
            }
        }
    }
}
