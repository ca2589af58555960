package io.csattention.device;

import io.csattention.kernel.Kernels;
import io.csattention.kernel.VectorKernels;
import io.csattention.core.Attention;
import io.csattention.core.BudgetPlan;
import io.csattention.core.CSAttentionIndex;
import io.csattention.core.CSAttentionSelector;
import io.csattention.core.CSAttentionSettings;
import io.csattention.core.CentroidDistance;
import io.csattention.core.FloatMatrix;
import io.csattention.core.KeyValueCache;
import io.csattention.core.MissingScore;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The same cases against every backend, compared with {@code io.csattention.core} run directly (the reference):
 * the selected sets agree (recall of the reference set >= {@value #MIN_RECALL}; ties go to the lowest key id on every
 * backend), outputs agree within {@value #MAX_RELATIVE_ERROR} relative L2 error, and an index built by the backend
 * decodes like the CPU-built one. GPU cases are skipped where no usable CUDA device exists. Sizes are odd or prime to
 * hit loop and block tails.
 */
class DecodeBackendContractTest {

    static final double MIN_RECALL = 0.99;
    static final double MAX_RELATIVE_ERROR = 2e-3;
    static final long SEED = 20261128L;

    private static final VectorKernels REFERENCE_KERNELS = Kernels.preferred();

    static DecodeBackend backend(String name) {
        if (name.equals("gpu")) {
            String reason = Backends.gpuUnavailableReason(0);
            Assumptions.assumeTrue(reason == null, () -> "no usable GPU: " + reason);
        }
        return Backends.select(name);
    }

    /** A context whose queries have clear favourites: each query is a noisy copy of a few keys, plus RoPE-free drift. */
    record Context(KeyValueCache cache, FloatMatrix prefillQueries, FloatMatrix queries) {
        static Context random(int n, int d, int prefill, int queries, long seed) {
            System.out.println("context n=" + n + " d=" + d + " seed=" + seed);
            SplittableRandom random = new SplittableRandom(seed);
            float[] keys = gaussian(random, n * d, 1.0);
            float[] values = gaussian(random, n * d, 1.0);
            float[] prefillQueries = new float[prefill * d];
            float[] decodeQueries = new float[queries * d];
            fillNear(random, keys, n, d, prefillQueries, prefill);
            fillNear(random, keys, n, d, decodeQueries, queries);
            return new Context(KeyValueCache.of(new FloatMatrix(n, d, keys), new FloatMatrix(n, d, values)),
                    new FloatMatrix(prefill, d, prefillQueries), new FloatMatrix(queries, d, decodeQueries));
        }

        private static void fillNear(SplittableRandom random, float[] keys, int n, int d, float[] out, int rows) {
            for (int r = 0; r < rows; r++) {
                for (int copy = 0; copy < 3; copy++) {
                    int key = random.nextInt(n);
                    for (int t = 0; t < d; t++) {
                        out[r * d + t] += 1.5f * keys[key * d + t];
                    }
                }
                for (int t = 0; t < d; t++) {
                    out[r * d + t] += (float) (0.5 * random.nextGaussian());
                }
            }
        }

        private static float[] gaussian(SplittableRandom random, int count, double scale) {
            float[] out = new float[count];
            for (int i = 0; i < count; i++) {
                out[i] = (float) (scale * random.nextGaussian());
            }
            return out;
        }
    }

    /** What core computes directly for each query of the context. */
    static DecodedBlock reference(Context context, CSAttentionIndex index, CSAttentionSettings settings) {
        KeyValueCache cache = context.cache();
        CSAttentionSelector selector = new CSAttentionSelector(REFERENCE_KERNELS, index, cache,
                settings.rescoreFactor());
        BudgetPlan plan = settings.plan(cache.size());
        int d = cache.dim();
        int m = context.queries().rows();
        int[] selected = new int[m * plan.budget()];
        float[] outputs = new float[m * d];
        for (int q = 0; q < m; q++) {
            int[] keys = selector.select(context.queries().data(), q * d, plan);
            System.arraycopy(keys, 0, selected, q * plan.budget(), plan.budget());
            Attention.attend(REFERENCE_KERNELS, context.queries().data(), q * d, cache, keys, outputs, q * d);
        }
        return new DecodedBlock(plan, selected, new FloatMatrix(m, d, outputs));
    }

    static void assertAgrees(DecodedBlock expected, DecodedBlock actual, String what) {
        assertEquals(expected.plan(), actual.plan(), what + ": plan");
        for (int q = 0; q < expected.queries(); q++) {
            int[] want = expected.selected(q);
            int[] got = actual.selected(q);
            assertTrue(isAscendingWithPadding(got), what + ": query " + q + " selection must be ascending");
            double recall = recall(want, got);
            assertTrue(recall >= MIN_RECALL, what + ": query " + q + " recall of the reference set " + recall);
        }
        double error = relativeError(expected.outputs(), actual.outputs());
        assertTrue(error <= MAX_RELATIVE_ERROR, what + ": relative output error " + error);
    }

    static double recall(int[] reference, int[] actual) {
        int[] sorted = Arrays.stream(actual).filter(id -> id >= 0).sorted().toArray();
        long wanted = Arrays.stream(reference).filter(id -> id >= 0).count();
        long found = Arrays.stream(reference).filter(id -> id >= 0 && Arrays.binarySearch(sorted, id) >= 0).count();
        return wanted == 0 ? 1.0 : (double) found / wanted;
    }

    static double relativeError(FloatMatrix expected, FloatMatrix actual) {
        assertEquals(expected.rows(), actual.rows());
        double worst = 0;
        int d = expected.cols();
        for (int q = 0; q < expected.rows(); q++) {
            double diff = 0;
            double norm = 0;
            for (int t = 0; t < d; t++) {
                double e = expected.get(q, t);
                double a = actual.get(q, t);
                diff += (e - a) * (e - a);
                norm += e * e;
            }
            worst = Math.max(worst, Math.sqrt(diff) / Math.max(1e-12, Math.sqrt(norm)));
        }
        return worst;
    }

    private static boolean isAscendingWithPadding(int[] ids) {
        int last = -1;
        boolean padding = false;
        for (int id : ids) {
            if (id < 0) {
                padding = true;
            } else if (padding || id <= last) {
                return false;
            } else {
                last = id;
            }
        }
        return true;
    }

    private static CSAttentionSettings settings() {
        return CSAttentionSettings.defaults().withSparsity(0.9).withCentroids(32).withSeed(SEED);
    }

    @ParameterizedTest
    @ValueSource(strings = {"cpu", "gpu"})
    void decodeAgreesWithCoreOnOddSizes(String name) {
        DecodeBackend backend = backend(name);
        Context context = Context.random(1009, 24, 257, 37, SEED);
        CSAttentionSettings settings = settings();
        CSAttentionIndex index = CSAttentionIndex.build(REFERENCE_KERNELS, context.cache().keyMatrix(),
                context.prefillQueries(), settings);
        try (ContextDecoder decoder = backend.open(context.cache(), index, settings)) {
            assertAgrees(reference(context, index, settings), decoder.decode(context.queries()), backend.name());
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"cpu", "gpu"})
    void decodeAgreesAcrossSettings(String name) {
        DecodeBackend backend = backend(name);
        Context context = Context.random(2053, 64, 311, 19, SEED + 1);
        CSAttentionSettings[] variants = {
                settings().withRescoreFactor(0),
                settings().withDistance(CentroidDistance.L2).withMissingScore(MissingScore.MEAN_BELOW_FLOOR),
                settings().withMissingScore(MissingScore.ZERO).withSink(0).withWindow(0),
                settings().withSparsity(0.97).withSink(3).withWindow(59).withSubspaces(2),
                settings().withListFraction(0.01),
        };
        for (CSAttentionSettings settings : variants) {
            CSAttentionIndex index = CSAttentionIndex.build(REFERENCE_KERNELS, context.cache().keyMatrix(),
                    context.prefillQueries(), settings);
            try (ContextDecoder decoder = backend.open(context.cache(), index, settings)) {
                assertAgrees(reference(context, index, settings), decoder.decode(context.queries()),
                        backend.name() + " " + settings);
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"cpu", "gpu"})
    void budgetOfOnlySinkAndWindowSelectsThem(String name) {
        DecodeBackend backend = backend(name);
        Context context = Context.random(101, 16, 31, 5, SEED + 2);
        CSAttentionSettings settings = settings().withSink(4).withWindow(7).withSparsity(0.892);
        CSAttentionIndex index = CSAttentionIndex.build(REFERENCE_KERNELS, context.cache().keyMatrix(),
                context.prefillQueries(), settings);
        try (ContextDecoder decoder = backend.open(context.cache(), index, settings)) {
            DecodedBlock block = decoder.decode(context.queries());
            assertEquals(0, block.plan().chosen());
            int[] expected = IntStream.concat(IntStream.range(0, 4), IntStream.range(94, 101)).toArray();
            for (int q = 0; q < block.queries(); q++) {
                assertEquals(Arrays.toString(expected), Arrays.toString(block.selected(q)));
            }
            assertAgrees(reference(context, index, settings), block, backend.name());
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"cpu", "gpu"})
    void fullAttentionAgreesWithCore(String name) {
        DecodeBackend backend = backend(name);
        Context context = Context.random(1543, 40, 7, 13, SEED + 3);
        int d = 40;
        int[] all = IntStream.range(0, 1543).toArray();
        float[] expected = new float[13 * d];
        for (int q = 0; q < 13; q++) {
            Attention.attend(REFERENCE_KERNELS, context.queries().data(), q * d, context.cache(), all, expected,
                    q * d);
        }
        try (ContextDecoder decoder = backend.open(context.cache(), null, settings())) {
            double error = relativeError(new FloatMatrix(13, d, expected), decoder.attendAll(context.queries()));
            assertTrue(error <= MAX_RELATIVE_ERROR, backend.name() + ": relative output error " + error);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"cpu", "gpu"})
    void indexBuiltByTheBackendDecodesLikeTheCpuIndex(String name) {
        DecodeBackend backend = backend(name);
        Context context = Context.random(3001, 32, 509, 23, SEED + 4);
        for (CSAttentionSettings settings : new CSAttentionSettings[] {
                settings(), settings().withCentroids(600).withMissingScore(MissingScore.MEAN_BELOW_FLOOR)}) {
            CSAttentionIndex cpuIndex = CSAttentionIndex.build(REFERENCE_KERNELS, context.cache().keyMatrix(),
                    context.prefillQueries(), settings);
            CSAttentionIndex built = backend.buildIndex(context.cache().keyMatrix(), context.prefillQueries(),
                    settings);
            assertEquals(cpuIndex.subspaces(), built.subspaces());
            assertEquals(cpuIndex.centroidCount(), built.centroidCount());
            assertEquals(cpuIndex.listLength(), built.listLength());
            assertTrue(maxAbsDifference(cpuIndex.centroids(), built.centroids()) < 1e-3,
                    backend.name() + ": centroids differ");
            assertAgrees(reference(context, cpuIndex, settings), reference(context, built, settings),
                    backend.name() + " built index " + settings);
        }
    }

    @Test
    void openRejectsAnIndexOfAnotherContext() {
        Context context = Context.random(211, 16, 31, 3, SEED + 5);
        CSAttentionSettings settings = settings();
        CSAttentionIndex index = CSAttentionIndex.build(REFERENCE_KERNELS, context.cache().keyMatrix().rows(0, 200),
                context.prefillQueries(), settings);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Backends.cpu().open(context.cache(), index, settings));
        assertEquals("index must cover exactly the cache's 211 keys (streamed keys are decoded by "
                + "CSAttentionSelector); index.keys=200", e.getMessage());
    }

    @Test
    void decodeRejectsQueriesOfAnotherDimension() {
        Context context = Context.random(211, 16, 31, 3, SEED + 6);
        try (ContextDecoder decoder = Backends.cpu().open(context.cache(), null, settings())) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> decoder.attendAll(FloatMatrix.zeros(2, 8)));
            assertEquals("queries must have the context's dim 16; queries.cols=8", e.getMessage());
        }
    }

    private static double maxAbsDifference(float[] a, float[] b) {
        assertEquals(a.length, b.length);
        double worst = 0;
        for (int i = 0; i < a.length; i++) {
            worst = Math.max(worst, Math.abs(a[i] - b[i]));
        }
        return worst;
    }
}
