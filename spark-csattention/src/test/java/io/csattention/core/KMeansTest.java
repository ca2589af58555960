package io.csattention.core;

import io.csattention.kernel.ScalarKernels;
import org.junit.jupiter.api.Test;

import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

class KMeansTest {

    private static final long SEED = 20261128L;

    @Test
    void sameSeedGivesIdenticalCentroids() {
        FloatMatrix data = TestData.gaussian(500, 8, SEED);
        int[] rows = IntStream.range(0, 500).toArray();
        float[] a = KMeans.train(ScalarKernels.INSTANCE, data.data(), 8, 0, 8, rows, 16, 10, SEED);
        float[] b = KMeans.train(ScalarKernels.INSTANCE, data.data(), 8, 0, 8, rows, 16, 10, SEED);
        assertArrayEquals(a, b, "seed " + SEED);
    }

    @Test
    void moreCentroidsThanPointsKeepsThePointsThemselves() {
        FloatMatrix data = TestData.gaussian(5, 4, SEED);
        float[] centroids = KMeans.train(ScalarKernels.INSTANCE, data.data(), 4, 0, 4, new int[] {0, 1, 2, 3, 4},
                64, 10, SEED);
        assertArrayEquals(data.data(), centroids);
    }

    @Test
    void duplicatePointsLeaveNoEmptyOrNonFiniteCentroid() {
        // 40 copies of two points and 6 clusters: seeding and Lloyd steps must re-seed empty clusters.
        float[] data = new float[80 * 2];
        for (int i = 0; i < 80; i++) {
            data[2 * i] = i % 2 == 0 ? 1f : -1f;
            data[2 * i + 1] = i % 2 == 0 ? 0.5f : 2f;
        }
        float[] centroids = KMeans.train(ScalarKernels.INSTANCE, data, 2, 0, 2, IntStream.range(0, 80).toArray(), 6,
                10, SEED);
        assertEquals(12, centroids.length);
        for (float v : centroids) {
            assertFalse(Float.isNaN(v) || Float.isInfinite(v), "centroid value " + v);
        }
    }

    @Test
    void clustersOneSubspaceOfWiderRows() {
        // rows are [a, b] where only the second half (cols 2..3) has two clear clusters
        float[] data = new float[100 * 4];
        for (int i = 0; i < 100; i++) {
            data[i * 4] = i;
            data[i * 4 + 2] = i < 50 ? 10f : -10f;
            data[i * 4 + 3] = i < 50 ? 10f : -10f;
        }
        float[] centroids = KMeans.train(ScalarKernels.INSTANCE, data, 4, 2, 2, IntStream.range(0, 100).toArray(), 2,
                10, SEED);
        float first = centroids[0];
        float second = centroids[2];
        assertEquals(0f, first + second, 1e-4f, "the two centroids sit at +10 and -10");
        assertEquals(10f, Math.abs(first), 1e-4f);
    }
}
