package io.csattention.core;

import io.csattention.kernel.Kernels;
import io.csattention.kernel.VectorKernels;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** Keys appended after the build join exactly the lists whose floor they beat, and the tables check their shapes. */
class StreamingOverflowTest {

    private static final long SEED = 23L;
    private static final VectorKernels KERNELS = Kernels.preferred();

    @BeforeAll
    static void printSeed() {
        System.out.println("StreamingOverflowTest seed=" + SEED);
    }

    @Test
    void appendedKeysJoinTheListsWhoseFloorTheyBeatAsAFloat64ReferenceSays() {
        int n = 1_000;
        int appended = 37;
        int d = 16;
        FloatMatrix all = TestData.gaussian(n + appended, d, SEED);
        FloatMatrix prefill = TestData.gaussian(300, d, SEED + 1);
        CSAttentionSettings settings = CSAttentionSettings.defaults().withSparsity(0.9).withCentroids(8);
        CSAttentionIndex index = CSAttentionIndex.build(KERNELS, all.rows(0, n), prefill, settings);
        IndexShape shape = index.shape();
        int width = shape.width();
        float[] scoring = index.scoringCentroids();
        List<List<Integer>> expected = new ArrayList<>();
        List<List<Integer>> ambiguous = new ArrayList<>();
        for (int list = 0; list < shape.lists(); list++) {
            expected.add(new ArrayList<>());
            ambiguous.add(new ArrayList<>());
        }
        long entries = 0;
        for (int id = n; id < n + appended; id++) {
            index.insert(KERNELS, all.data(), id);
            for (int list = 0; list < shape.lists(); list++) {
                int j = list / shape.centroidCount();
                double score = 0;
                for (int t = 0; t < width; t++) {
                    score += (double) scoring[list * width + t] * all.get(id, j * width + t);
                }
                double floor = index.floors()[list];
                if (Math.abs(score - floor) < 1e-4) {
                    ambiguous.get(list).add(id); // too close to the floor for float64 to judge a float32 dot product
                    continue;
                }
                if (score > floor) {
                    expected.get(list).add(id);
                    entries++;
                }
            }
        }
        StreamingOverflow overflow = index.overflow();
        long actual = 0;
        for (int list = 0; list < shape.lists(); list++) {
            List<Integer> got = new ArrayList<>();
            for (int r = 0; r < overflow.count(list); r++) {
                got.add(overflow.ids(list)[r]);
            }
            actual += got.size();
            got.removeAll(ambiguous.get(list));
            assertEquals(expected.get(list), got, "list " + list);
        }
        assertEquals(8L * actual, index.streamedBytes());
        assertEquals(index.tables().bytes() + 8L * actual, index.bytes());
        assertEquals(true, actual >= entries && entries > 0, "entries " + actual + " against " + entries);
    }

    @Test
    void tablesOfTheWrongSizeAreRefusedNamingTheLength() {
        IndexShape shape = new IndexShape(6, 4, 2, 2, 3, 0.5, 42L, CentroidDistance.L2, MissingScore.FLOOR);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> IndexTables.withoutRope(
                shape, new float[8], new int[11], new float[11], new float[4], new float[4]));
        assertEquals("lists must hold m*C*L entries (or none, once dropped); lists.length=11", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> IndexTables.withoutRope(shape, new float[7],
                new int[12], new float[12], new float[4], new float[4]));
        assertEquals("centroids must hold m*C*d/m floats; centroids.length=7", e.getMessage());
    }
}
