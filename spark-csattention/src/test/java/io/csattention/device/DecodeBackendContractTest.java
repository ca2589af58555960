package io.csattention.device;

import io.csattention.kernel.Kernels;
import io.csattention.kernel.VectorKernels;
import io.csattention.core.Attention;
import io.csattention.core.BudgetPlan;
import io.csattention.core.CSAttentionIndex;
import io.csattention.core.CSAttentionSelector;
import io.csattention.core.CSAttentionSettings;
import io.csattention.core.CentroidDistance;
import io.csattention.core.ExactReference;
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
 * The same cases against every backend. The CPU backend, the reference the others are held to, is held to what the
 * method should compute, in float64 here: its selections hold the sink and window keys and find the exact top keys
 * of the middle range (mean and least recall per case, measured values next to each floor), each output is exact
 * softmax attention over the keys it selected, and it stays within a measured bound of exact attention over all keys.
 * A GPU backend runs the CPU's decode algorithm and must select what {@code io.csattention.core} run directly selects,
 * key for key except at near-ties of its float steps ({@link GpuAgreement}: recall of the reference set >=
 * {@value #MIN_RECALL} on every query, ties to the lowest key id on every backend), with outputs within
 * {@value #MAX_RELATIVE_ERROR} relative L2 error; an index built by the backend decodes like the CPU-built one (recall
 * and output bars: the two builds' float k-means may part on near-ties and change whole lists).
 * GPU cases are skipped where no usable CUDA device exists. Sizes are odd or prime to hit loop and block tails.
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

    /**
     * A floor on the recall of the exact top keys (mean over the queries and least query) and a bound on the relative
     * L2 error against exact attention over all keys (mean and worst query), for the CPU backend.
     */
    record Floors(double meanRecall, double minRecall, double meanError, double maxError) {
    }

    /**
     * The CPU backend's decode of {@code context} against float64 computed here: each query's selection is ascending,
     * holds the sink and window keys and {@code chosen} distinct keys in between; its output is exact attention over
     * that selection (within {@value #MAX_RELATIVE_ERROR}); the selection's recall of the exact top keys and the
     * output's error against exact attention over all keys meet {@code floors}.
     */
    static void assertNearExact(Context context, DecodedBlock block, Floors floors, String what) {
        KeyValueCache cache = context.cache();
        BudgetPlan plan = block.plan();
        int n = cache.size();
        int d = cache.dim();
        int m = block.queries();
        float[] keys = java.util.Arrays.copyOf(cache.keys(), n * d);
        float[] values = java.util.Arrays.copyOf(cache.values(), n * d);
        double[] recall = new double[m];
        double[] error = new double[m];
        double oracleError = 0;
        for (int q = 0; q < m; q++) {
            int[] got = block.selected(q);
            assertTrue(isAscendingWithPadding(got), what + ": query " + q + " selection must be ascending");
            int[] forced = IntStream.concat(IntStream.range(0, plan.sink()), IntStream.range(plan.middleEnd(), n))
                    .toArray();
            assertEquals(1.0, ExactReference.recall(forced, got), what + ": query " + q + " sink and window keys");
            assertEquals(plan.budget(), Arrays.stream(got).filter(id -> id >= 0).count(),
                    what + ": query " + q + " keys attended");
            double[] scores = ExactReference.scores(context.queries().data(), q * d, keys, n, d);
            double[] overSelection = ExactReference.attend(scores, got, values, d);
            double attendError = ExactReference.relativeError(block.outputs().data(), q * d, overSelection);
            assertTrue(attendError <= MAX_RELATIVE_ERROR, what + ": query " + q
                    + " output against exact attention over its own selection " + attendError);
            double[] exact = ExactReference.attendAll(scores, values, d);
            recall[q] = ExactReference.recall(ExactReference.oracleChosen(scores, plan), got);
            error[q] = ExactReference.relativeError(block.outputs().data(), q * d, exact);
            oracleError = Math.max(oracleError, ExactReference.relativeError(
                    ExactReference.attend(scores, ExactReference.oracleSet(scores, plan), values, d), exact));
        }
        double meanRecall = Arrays.stream(recall).average().orElse(1);
        double minRecall = Arrays.stream(recall).min().orElse(1);
        double meanError = Arrays.stream(error).average().orElse(0);
        double maxError = Arrays.stream(error).max().orElse(0);
        String measured = String.format("%s: recall of the exact top keys mean %.4f min %.4f, error against exact "
                        + "attention mean %.5f max %.5f (oracle set max %.5f)", what, meanRecall, minRecall, meanError,
                maxError, oracleError);
        System.out.println(measured);
        assertTrue(meanRecall >= floors.meanRecall() && minRecall >= floors.minRecall()
                && meanError <= floors.meanError() && maxError <= floors.maxError(), measured + " against " + floors);
    }

    /** The CPU backend meets {@code floors}; a GPU backend selects like core run directly on {@code index}. */
    static void assertDecodes(DecodeBackend backend, Context context, CSAttentionIndex index,
                              CSAttentionSettings settings, DecodedBlock block, Floors floors, String what) {
        if (backend.isGpu()) {
            int nearTies = GpuAgreement.assertSelectsLikeCpu(context.cache(), index, settings, context.queries(),
                    reference(context, index, settings), block, what);
            System.out.println(what + ": " + nearTies + " selected keys differ from the CPU's, all at near-ties");
        } else {
            assertNearExact(context, block, floors, what);
        }
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

    static boolean isAscendingWithPadding(int[] ids) {
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

    static CSAttentionSettings settings() {
        return CSAttentionSettings.defaults().withSparsity(0.9).withCentroids(32).withSeed(SEED);
    }

    static Context oddSizesContext() {
        return Context.random(1009, 24, 257, 37, SEED);
    }

    static Context settingsContext() {
        return Context.random(2053, 64, 311, 19, SEED + 1);
    }

    /** The settings of {@link #decodeAgreesAcrossSettings}, each on {@link #settingsContext}. */
    static CSAttentionSettings[] settingsVariants() {
        return new CSAttentionSettings[] {
                settings().withRescoreFactor(0),
                settings().withDistance(CentroidDistance.L2).withMissingScore(MissingScore.MEAN_BELOW_FLOOR),
                settings().withMissingScore(MissingScore.ZERO).withSink(0).withWindow(0),
                settings().withSparsity(0.97).withSink(3).withWindow(59).withSubspaces(2),
                settings().withListFraction(0.01),
        };
    }

    static Context sinkAndWindowContext() {
        return Context.random(101, 16, 31, 5, SEED + 2);
    }

    static CSAttentionSettings sinkAndWindowSettings() {
        return settings().withSink(4).withWindow(7).withSparsity(0.892);
    }

    @ParameterizedTest
    @ValueSource(strings = {"cpu", "gpu"})
    void decodeAgreesWithCoreOnOddSizes(String name) {
        DecodeBackend backend = backend(name);
        Context context = oddSizesContext();
        CSAttentionSettings settings = settings();
        CSAttentionIndex index = CSAttentionIndex.build(REFERENCE_KERNELS, context.cache().keyMatrix(),
                context.prefillQueries(), settings);
        try (ContextDecoder decoder = backend.open(context.cache(), index, settings)) {
            // measured on the CPU: recall 0.9472 / 0.8588, error 0.0938 / 0.7245 (oracle set worst 0.5762)
            assertDecodes(backend, context, index, settings, decoder.decode(context.queries()),
                    new Floors(0.92, 0.80, 0.12, 0.85), backend.name());
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"cpu", "gpu"})
    void decodeAgreesAcrossSettings(String name) {
        DecodeBackend backend = backend(name);
        Context context = settingsContext();
        CSAttentionSettings[] variants = settingsVariants();
        // for the CPU: measured mean / least recall, mean / worst error against exact attention over all keys
        Floors[] floors = {
                new Floors(0.25, 0.18, 0.45, 1.60), // 0.2828 / 0.2260, 0.3759 / 1.4655
                new Floors(0.70, 0.58, 0.11, 0.45), // 0.7288 / 0.6328, 0.0888 / 0.3864
                new Floors(0.74, 0.61, 0.10, 0.42), // 0.7693 / 0.6650, 0.0806 / 0.3480
                new Floors(1.00, 1.00, 1.20, 1.75), // no chosen keys: 1 / 1, 1.1520 / 1.6699 (= the oracle set's)
                new Floors(0.44, 0.35, 0.60, 1.70), // 0.4746 / 0.4068, 0.5001 / 1.5331
        };
        for (int v = 0; v < variants.length; v++) {
            CSAttentionSettings settings = variants[v];
            CSAttentionIndex index = CSAttentionIndex.build(REFERENCE_KERNELS, context.cache().keyMatrix(),
                    context.prefillQueries(), settings);
            try (ContextDecoder decoder = backend.open(context.cache(), index, settings)) {
                assertDecodes(backend, context, index, settings, decoder.decode(context.queries()), floors[v],
                        backend.name() + " " + settings);
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"cpu", "gpu"})
    void budgetOfOnlySinkAndWindowSelectsThem(String name) {
        DecodeBackend backend = backend(name);
        Context context = sinkAndWindowContext();
        CSAttentionSettings settings = sinkAndWindowSettings();
        CSAttentionIndex index = CSAttentionIndex.build(REFERENCE_KERNELS, context.cache().keyMatrix(),
                context.prefillQueries(), settings);
        try (ContextDecoder decoder = backend.open(context.cache(), index, settings)) {
            DecodedBlock block = decoder.decode(context.queries());
            assertEquals(0, block.plan().chosen());
            int[] expected = IntStream.concat(IntStream.range(0, 4), IntStream.range(94, 101)).toArray();
            for (int q = 0; q < block.queries(); q++) {
                assertEquals(Arrays.toString(expected), Arrays.toString(block.selected(q)));
            }
            // no chosen keys: recall 1 / 1, error 1.5132 / 1.7415 on the CPU, the oracle set's
            assertDecodes(backend, context, index, settings, block, new Floors(1, 1, 1.55, 1.80), backend.name());
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"cpu", "gpu"})
    void fullAttentionAgreesWithCore(String name) {
        DecodeBackend backend = backend(name);
        Context context = Context.random(1543, 40, 7, 13, SEED + 3);
        int d = 40;
        try (ContextDecoder decoder = backend.open(context.cache(), null, settings())) {
            FloatMatrix outputs = decoder.attendAll(context.queries());
            if (backend.isGpu()) {
                int[] all = IntStream.range(0, 1543).toArray();
                float[] expected = new float[13 * d];
                for (int q = 0; q < 13; q++) {
                    Attention.attend(REFERENCE_KERNELS, context.queries().data(), q * d, context.cache(), all,
                            expected, q * d);
                }
                double error = relativeError(new FloatMatrix(13, d, expected), outputs);
                assertTrue(error <= MAX_RELATIVE_ERROR, backend.name() + ": relative output error " + error);
            } else {
                double worst = 0;
                for (int q = 0; q < 13; q++) {
                    double[] scores = ExactReference.scores(context.queries().data(), q * d,
                            context.cache().keys(), 1543, d);
                    double[] exact = ExactReference.attendAll(scores, context.cache().values(), d);
                    worst = Math.max(worst, ExactReference.relativeError(outputs.data(), q * d, exact));
                }
                System.out.println(backend.name() + ": full attention, worst relative error against float64 "
                        + worst);
                // float32 scores, softmax and sums over 1,543 keys: measured 1.6e-6 (simd), 2.5e-6 (scalar)
                assertTrue(worst <= 1e-5, backend.name() + ": relative error against float64 " + worst);
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"cpu", "gpu"})
    void indexBuiltByTheBackendDecodesLikeTheCpuIndex(String name) {
        DecodeBackend backend = backend(name);
        Context context = Context.random(3001, 32, 509, 23, SEED + 4);
        CSAttentionSettings[] variants = {
                settings(), settings().withCentroids(600).withMissingScore(MissingScore.MEAN_BELOW_FLOOR)};
        // for the CPU: measured mean / least recall, mean / worst error against exact attention over all keys
        Floors[] floors = {
                new Floors(0.72, 0.57, 0.35, 1.00), // 0.7517 / 0.6269, 0.2932 / 0.9184
                new Floors(0.81, 0.68, 0.21, 0.95), // 0.8391 / 0.7423, 0.1736 / 0.8455
        };
        for (int v = 0; v < variants.length; v++) {
            CSAttentionSettings settings = variants[v];
            CSAttentionIndex cpuIndex = CSAttentionIndex.build(REFERENCE_KERNELS, context.cache().keyMatrix(),
                    context.prefillQueries(), settings);
            CSAttentionIndex built = backend.buildIndex(context.cache().keyMatrix(), context.prefillQueries(),
                    settings);
            assertEquals(cpuIndex.subspaces(), built.subspaces());
            assertEquals(cpuIndex.centroidCount(), built.centroidCount());
            assertEquals(cpuIndex.listLength(), built.listLength());
            assertTrue(maxAbsDifference(cpuIndex.centroids(), built.centroids()) < 1e-3,
                    backend.name() + ": centroids differ");
            if (backend.isGpu()) {
                assertAgrees(reference(context, cpuIndex, settings), reference(context, built, settings),
                        backend.name() + " built index " + settings);
            } else {
                try (ContextDecoder decoder = backend.open(context.cache(), built, settings)) {
                    assertNearExact(context, decoder.decode(context.queries()), floors[v],
                            backend.name() + " built index " + settings);
                }
            }
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
