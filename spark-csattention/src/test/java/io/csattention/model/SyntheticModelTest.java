package io.csattention.model;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The benchmark models' random weights: decoded by the dequantization that matches ggml ({@link
 * WeightMatrixQuantsTest}), every type's values have mean about 0 and standard deviation about 1 / sqrt(cols), so
 * activations stay in range through the layers.
 */
class SyntheticModelTest {

    @ParameterizedTest
    @EnumSource(value = TensorType.class, names = {"Q8_0", "Q4_K", "Q5_K", "Q6_K"})
    void randomBlocksHaveTheIntendedSpread(TensorType type) {
        int rows = 64;
        int cols = 1024;
        WeightMatrix m = SyntheticModel.matrix("w", type, rows, cols, new SplittableRandom(7));
        double sum = 0;
        double squares = 0;
        for (float v : m.toFloats()) {
            sum += v;
            squares += (double) v * v;
        }
        int n = rows * cols;
        double mean = sum / n;
        double std = Math.sqrt(squares / n - mean * mean);
        double target = 1 / Math.sqrt(cols);
        System.out.printf("%s: mean %.3g, std %.4f (target %.4f)%n", type, mean, std, target);
        assertTrue(Math.abs(mean) < 0.05 * target, type + " mean " + mean);
        assertTrue(Math.abs(std / target - 1) < 0.05, type + " std " + std + " vs " + target);
    }
}
