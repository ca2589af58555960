package io.csattention.core;

import java.util.SplittableRandom;

/** Seeded random tensors for tests; every test that uses one prints its seed through the assertion messages. */
public final class TestData {

    private TestData() {
    }

    public static FloatMatrix gaussian(int rows, int cols, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        float[] data = new float[rows * cols];
        for (int i = 0; i < data.length; i++) {
            double u = 1 - random.nextDouble();
            double v = random.nextDouble();
            data[i] = (float) (Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v));
        }
        return new FloatMatrix(rows, cols, data);
    }
}
