package io.csattention.core;

import io.csattention.baseline.AttentionMethod;
import io.csattention.eval.Metrics;
import io.csattention.kernel.Kernels;
import io.csattention.kernel.VectorKernels;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class CSAttentionTest {

    private static final long SEED = 5L;
    private static final VectorKernels KERNELS = Kernels.preferred();

    /**
     * Four query "topics"; each owns 20 keys that score far above the rest for its queries. The prefill queries
     * come from the same topics, so the lists must hold the planted keys.
     */
    @Test
    void recoversAPlantedTopSetAndOracleRecallIsOne() {
        int n = 2000;
        int d = 32;
        int topics = 4;
        SplittableRandom random = new SplittableRandom(SEED);
        FloatMatrix directions = TestData.gaussian(topics, d, SEED);
        FloatMatrix keys = TestData.gaussian(n, d, SEED + 1);
        FloatMatrix values = TestData.gaussian(n, d, SEED + 2);
        int[][] planted = new int[topics][20];
        for (int t = 0; t < topics; t++) {
            for (int r = 0; r < 20; r++) {
                int key = 100 + t * 400 + r * 7;
                planted[t][r] = key;
                for (int c = 0; c < d; c++) {
                    keys.data()[key * d + c] += 4 * directions.get(t, c);
                }
            }
        }
        FloatMatrix prefill = noisyCopies(directions, 400, random);
        FloatMatrix queries = noisyCopies(directions, 16, random);
        CSAttentionSettings settings = CSAttentionSettings.defaults().withSparsity(0.99).withSink(0).withWindow(0);
        KeyValueCache cache = KeyValueCache.of(keys, values);
        KeySelector cs = AttentionMethod.CSATTENTION.newSelector(KERNELS, cache, prefill, settings);
        KeySelector oracle = AttentionMethod.ORACLE.newSelector(KERNELS, cache, prefill, settings);
        BudgetPlan plan = settings.plan(n);
        assertEquals(20, plan.budget());
        for (int q = 0; q < queries.rows(); q++) {
            int topic = q % topics;
            int[] expected = planted[topic].clone();
            java.util.Arrays.sort(expected);
            int[] fromOracle = oracle.select(queries.data(), q * d, plan);
            assertArrayEquals(expected, fromOracle, "oracle, query " + q + ", seed " + SEED);
            int[] fromIndex = cs.select(queries.data(), q * d, plan);
            double recall = Metrics.recall(fromIndex, 0, fromIndex.length, fromOracle, 0, fromOracle.length);
            assertTrue(recall >= 0.95, "csattention recall " + recall + " on query " + q + ", seed " + SEED);
        }
    }

    @Test
    void literalSettingsAlsoRecoverAClearTopSet() {
        int n = 1000;
        int d = 16;
        FloatMatrix keys = TestData.gaussian(n, d, SEED);
        float[] direction = TestData.gaussian(1, d, SEED + 9).data();
        for (int key = 500; key < 510; key++) {
            for (int c = 0; c < d; c++) {
                keys.data()[key * d + c] = 6 * direction[c];
            }
        }
        FloatMatrix prefill = noisyCopies(new FloatMatrix(1, d, direction), 200, new SplittableRandom(SEED));
        CSAttentionSettings settings = CSAttentionSettings.literal().withSparsity(0.99).withSink(0).withWindow(0);
        KeyValueCache cache = KeyValueCache.of(keys, TestData.gaussian(n, d, SEED + 1));
        KeySelector cs = AttentionMethod.CSATTENTION.newSelector(KERNELS, cache, prefill, settings);
        int[] selected = cs.select(direction, 0, settings.plan(n));
        assertArrayEquals(java.util.stream.IntStream.range(500, 510).toArray(), selected, "seed " + SEED);
    }

    @Test
    void aStreamedKeyThatScoresHighestIsSelectableRightAfterInsertion() {
        int n = 1500;
        int d = 16;
        FloatMatrix keys = TestData.gaussian(n, d, SEED);
        FloatMatrix prefill = TestData.gaussian(n, d, SEED + 1);
        CSAttentionSettings settings = CSAttentionSettings.defaults().withSparsity(0.98).withSink(0).withWindow(0);
        KeyValueCache cache = KeyValueCache.of(keys, TestData.gaussian(n, d, SEED + 2));
        KeySelector cs = AttentionMethod.CSATTENTION.newSelector(KERNELS, cache, prefill, settings);
        float[] query = prefill.row(3);
        float[] streamed = new float[d];
        for (int c = 0; c < d; c++) {
            streamed[c] = 10 * query[c];
        }
        int id = cache.append(streamed, 0, new float[d], 0);
        cs.keysAppended();
        int[] selected = cs.select(query, 0, settings.plan(cache.size()));
        assertTrue(java.util.Arrays.stream(selected).anyMatch(i -> i == id),
                "streamed key " + id + " selected; seed " + SEED);
    }

    @Test
    void indexBuildIsDeterministicForASeed() {
        FloatMatrix keys = TestData.gaussian(700, 16, SEED);
        FloatMatrix prefill = TestData.gaussian(300, 16, SEED + 1);
        CSAttentionSettings settings = CSAttentionSettings.defaults();
        CSAttentionIndex a = CSAttentionIndex.build(KERNELS, keys, prefill, settings);
        CSAttentionIndex b = CSAttentionIndex.build(KERNELS, keys, prefill, settings);
        assertArrayEquals(a.centroids(), b.centroids());
        assertArrayEquals(a.listIds(), b.listIds());
        assertArrayEquals(a.listScores(), b.listScores());
        assertEquals(Math.min(CSAttentionSettings.DEFAULT_CENTROIDS, 300), a.centroidCount());
    }

    @Test
    void ropeBandsPutWholePairsInASubspaceAndDerotateOnlySlowBands() {
        int d = 16;
        long[] positions = java.util.stream.LongStream.range(0, 400).toArray();
        RopeInfo rope = new RopeInfo(10000, Rope.Style.HALF, positions, 400, 64);
        assertEquals(0, rope.sourceDimension(0, d));
        assertEquals(8, rope.sourceDimension(1, d));
        assertEquals(1, rope.sourceDimension(2, d));
        CSAttentionIndex index = CSAttentionIndex.build(KERNELS, TestData.gaussian(400, d, SEED),
                TestData.gaussian(400, d, SEED + 1), CSAttentionSettings.defaults().withSubspaces(4), rope);
        boolean[] slow = index.positionFree();
        // theta of the first pair of band j is 10000^(-2 * 2j / 16); slow when theta * 64 <= 0.5
        assertArrayEquals(new boolean[] {false, false, false, true}, slow);
    }

    private static FloatMatrix noisyCopies(FloatMatrix directions, int rows, SplittableRandom random) {
        int d = directions.cols();
        float[] data = new float[rows * d];
        for (int r = 0; r < rows; r++) {
            int t = r % directions.rows();
            for (int c = 0; c < d; c++) {
                data[r * d + c] = directions.get(t, c) + (float) (0.1 * (random.nextDouble() - 0.5));
            }
        }
        return new FloatMatrix(rows, d, data);
    }
}
