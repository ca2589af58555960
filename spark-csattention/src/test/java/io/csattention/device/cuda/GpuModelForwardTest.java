package io.csattention.device.cuda;

import io.csattention.core.FloatMatrix;
import io.csattention.core.KeyValueCache;
import io.csattention.device.Backends;
import io.csattention.model.DevicePrefill;
import io.csattention.model.LlamaConfig;
import io.csattention.model.LlamaForwardModel;
import io.csattention.model.LlamaModel;
import io.csattention.model.LlamaWeights;
import io.csattention.model.Session;
import io.csattention.model.SyntheticModel;
import io.csattention.model.WeightMatrix;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The GPU prefill ({@link GpuModelForward}) against the CPU forward ({@code Session.prefill}): the last token's logits,
 * and the keys, values and prefill queries the index build takes, within {@value #TOLERANCE} relative L2 error (both
 * run float32 products over the same dequantized weights; the GPU sums in another order, uses float exp in an online
 * softmax and fused multiply-adds). GPU cases are skipped where no usable CUDA device exists. The checks of shapes,
 * of the memory estimate and of the error lines run everywhere.
 */
class GpuModelForwardTest {

    static final double TOLERANCE = 1e-3;
    static final long SEED = 20261202L;

    private static void assumeGpu() {
        String reason = Backends.gpuUnavailableReason(0);
        Assumptions.assumeTrue(reason == null, () -> "no usable GPU: " + reason);
    }

    @Test
    void gpuPrefillOfTheSmallSyntheticModelMatchesTheCpuPrefill() {
        assumeGpu();
        System.out.println("GpuModelForwardTest seed=" + SEED);
        // Llama 3.2-shaped (head size 64, GQA 4:1), two blocks, Q4_K_M weights decoded to float32 on upload
        LlamaModel model = SyntheticModel.build(SyntheticModel.Shape.SMALL, 2, SyntheticModel.Quant.Q4_K_M, SEED);
        int[] tokens = randomTokens(model, 150, SEED + 1);
        Session cpu = model.newSession();
        float[] want = cpu.prefill(tokens);
        try (GpuModelForward gpu = GpuModelForward.open(LlamaForwardModel.of(model), 256, 96, 0)) {
            float[] got = gpu.prefill(tokens);
            assertClose(want, got, "logits");
            assertContextClose(model, cpu, gpu);
        }
    }

    @Test
    void gpuPrefillInTwoCallsWithBiasesPartialRopeAndGroupsOfThreeMatchesTheCpuPrefill() {
        assumeGpu();
        System.out.println("GpuModelForwardTest seed=" + SEED);
        LlamaModel model = oddModel(SEED + 2);
        int[] tokens = randomTokens(model, 137, SEED + 3);
        int[] first = java.util.Arrays.copyOf(tokens, 100);
        int[] rest = java.util.Arrays.copyOfRange(tokens, 100, tokens.length);
        Session cpu = model.newSession();
        float[] wantFirst = cpu.prefill(first);
        float[] wantRest = cpu.prefill(rest);
        // blocks of 45 tokens: cut elsewhere than the CPU's 64, and the second call starts inside a block
        try (GpuModelForward gpu = GpuModelForward.open(LlamaForwardModel.of(model), 200, 45, 0)) {
            assertClose(wantFirst, gpu.prefill(first), "logits after 100 tokens");
            assertClose(wantRest, gpu.prefill(rest), "logits after 137 tokens");
            assertEquals(137, gpu.position());
            assertContextClose(model, cpu, gpu);
        }
    }

    /**
     * The route the commands and Spark take ({@code DevicePrefill} under gpu and auto, through {@code Backends}
     * and the provider): the loaded session's logits, caches and prefill queries, and its next decode step on the CPU,
     * against the CPU session's; float32 caches on both sides, so the rows compared are the devices' own.
     */
    @Test
    void gpuPrefillRoutedThroughDevicePrefillMatchesTheCpuAndDecodingGoesOn() {
        assumeGpu();
        System.out.println("GpuModelForwardTest seed=" + SEED);
        LlamaModel model = SyntheticModel.build(SyntheticModel.Shape.SMALL, 2, SyntheticModel.Quant.Q8_0, SEED + 4);
        int[] tokens = randomTokens(model, 150, SEED + 5);
        LlamaConfig c = model.config();
        for (Backends.Mode mode : new Backends.Mode[] {Backends.Mode.GPU, Backends.Mode.AUTO}) {
            Session cpu = model.newSession(KeyValueCache.Precision.F32);
            float[] want = cpu.prefill(tokens);
            Session gpu = model.newSession(KeyValueCache.Precision.F32);
            assertClose(want, DevicePrefill.prefill(gpu, tokens, mode, 0), mode + " logits");
            assertEquals(tokens.length, gpu.position());
            for (int layer = 0; layer < c.layers(); layer++) {
                for (int g = 0; g < c.kvHeads(); g++) {
                    String where = " of layer " + layer + " kv head " + g;
                    assertMatrixClose(cpu.cache(layer, g).keyMatrix(), gpu.cache(layer, g).keyMatrix(), "keys" + where);
                    assertMatrixClose(cpu.cache(layer, g).valueMatrix(), gpu.cache(layer, g).valueMatrix(),
                            "values" + where);
                    assertMatrixClose(cpu.prefillQueries(layer, g), gpu.prefillQueries(layer, g), "queries" + where);
                }
            }
            int next = io.csattention.model.Sampler.argmax(want);
            assertClose(cpu.decode(next), gpu.decode(next), mode + " next decode step");
        }
    }

    @Test
    void withoutADeviceOpeningFailsWithTheReasonInOneLine() {
        String reason = Backends.gpuUnavailableReason(0);
        Assumptions.assumeTrue(reason != null, "a CUDA device is usable here");
        LlamaModel model = oddModel(SEED);
        CudaUnavailableException e = assertThrows(CudaUnavailableException.class,
                () -> GpuModelForward.open(LlamaForwardModel.of(model), 64, 0));
        assertEquals(reason, e.getMessage());
        assertFalse(e.getMessage().contains("\n"), e.getMessage());
    }

    @Test
    void shapesTheKernelsDoNotTakeAreRefusedBeforeAnyDeviceCall() {
        GpuModelForward.Shape config = shape(oddConfig(), true);
        assertEquals("max_tokens must be > 0; max_tokens=0", assertThrows(IllegalArgumentException.class,
                () -> GpuModelForward.checkShape(config, 0, 64)).getMessage());
        assertEquals("block_tokens must be > 0; block_tokens=0", assertThrows(IllegalArgumentException.class,
                () -> GpuModelForward.checkShape(config, 64, 0)).getMessage());
        assertEquals("max_tokens must be at most the model's context length 4096; max_tokens=4097",
                assertThrows(IllegalArgumentException.class,
                        () -> GpuModelForward.checkShape(config, 4097, 64)).getMessage());
        GpuModelForward.Shape wideHeads = shape(new LlamaConfig(512, 256, 1, 2, 1, 100, 4096, 10000f, 256, 1e-5f),
                false);
        assertEquals("head size must be at most 128 for the GPU prefill; head_size=256",
                assertThrows(IllegalArgumentException.class,
                        () -> GpuModelForward.checkShape(wideHeads, 64, 64)).getMessage());
        // the largest head the attention kernel takes passes
        GpuModelForward.checkShape(shape(new LlamaConfig(256, 256, 1, 2, 1, 100, 4096, 10000f, 128, 1e-5f), false),
                4096, 512);
        // an invalid shape is refused on a machine without a device too, before the device is looked for
        LlamaModel model = oddModel(SEED);
        assertEquals("max_tokens must be > 0; max_tokens=-1", assertThrows(IllegalArgumentException.class,
                () -> GpuModelForward.open(LlamaForwardModel.of(model), -1, 0)).getMessage());
    }

    @Test
    void theMemoryEstimateCountsTheWeightsTheContextAndOneBlock() {
        // oddConfig, 100 tokens of context, blocks of 10, in floats:
        // per layer: norms 2 * 96 = 192; wq and wo 2 * 96 * 96 = 18,432; wk and wv 2 * 32 * 96 = 6,144;
        // gate, up, down 3 * 200 * 96 = 57,600; biases 96 + 32 + 32 = 160; keys and values 2 * 100 * 32 = 6,400;
        // queries 100 * 96 = 9,600: 98,528, times 2 layers = 197,056
        // final norm 96, classifier 301 * 96 = 28,896, RoPE frequencies 16 / 2 = 8
        // block: x, xb, att 3 * 10 * 96 = 2,880; gate, up 2 * 10 * 200 = 4,000; positions 10; last row 96;
        // logits 301
        long floats = 197_056 + 96 + 28_896 + 8 + 2_880 + 4_000 + 10 + 96 + 301;
        assertEquals(4 * floats, GpuModelForward.deviceBytes(shape(oddConfig(), true), 100, 10));
        assertEquals(4 * (floats - 2 * 160), GpuModelForward.deviceBytes(shape(oddConfig(), false), 100, 10));
        // Llama 3.2 1B at 32K tokens: weights (without the embedding) and context are several GB, and the count
        // does not overflow an int
        long big = GpuModelForward.deviceBytes(shape(SyntheticModel.Shape.LLAMA32_1B.config(), false),
                32768, 512);
        assertTrue(big > 8L << 30 && big < 16L << 30, "bytes=" + big);
    }

    @Test
    void outOfMemoryNamesTheBytesNeededAndFree() {
        assertEquals("GPU 1 is out of memory for the model prefill: it needs 933372 bytes, 1000 bytes are free",
                GpuModelForward.outOfMemory(933_372, 1000, 1));
    }

    private static void assertContextClose(LlamaModel model, Session cpu, GpuModelForward gpu) {
        LlamaConfig c = model.config();
        for (int layer = 0; layer < c.layers(); layer++) {
            for (int g = 0; g < c.kvHeads(); g++) {
                String where = " of layer " + layer + " kv head " + g;
                assertMatrixClose(cpu.cache(layer, g).keyMatrix(), gpu.keys(layer, g), "keys" + where);
                assertMatrixClose(cpu.cache(layer, g).valueMatrix(), gpu.values(layer, g), "values" + where);
                assertMatrixClose(cpu.prefillQueries(layer, g), gpu.prefillQueries(layer, g), "queries" + where);
            }
        }
    }

    private static void assertMatrixClose(FloatMatrix want, FloatMatrix got, String what) {
        assertEquals(want.rows(), got.rows(), what + " rows");
        assertEquals(want.cols(), got.cols(), what + " cols");
        assertClose(java.util.Arrays.copyOf(want.data(), want.rows() * want.cols()),
                java.util.Arrays.copyOf(got.data(), got.rows() * got.cols()), what);
    }

    private static void assertClose(float[] want, float[] got, String what) {
        assertEquals(want.length, got.length, what + " length");
        double diff = 0;
        double norm = 0;
        for (int i = 0; i < want.length; i++) {
            diff += ((double) want[i] - got[i]) * ((double) want[i] - got[i]);
            norm += (double) want[i] * want[i];
        }
        double error = Math.sqrt(diff / norm);
        assertTrue(error < TOLERANCE, what + ": relative L2 error " + error + " (tolerance " + TOLERANCE + ")");
    }

    private static GpuModelForward.Shape shape(LlamaConfig c, boolean biases) {
        return new GpuModelForward.Shape(c.dim(), c.hiddenDim(), c.layers(), c.heads(), c.kvHeads(), c.vocabSize(),
                c.contextLength(), c.ropeDim(), biases);
    }

    @Test
    void theShapeOfTheAdaptedModelIsTheModelsAndFindsItsBiases() {
        LlamaModel odd = oddModel(SEED);
        assertEquals(shape(oddConfig(), true), GpuModelForward.Shape.of(LlamaForwardModel.of(odd)));
        LlamaModel small = SyntheticModel.build(SyntheticModel.Shape.SMALL, 1, SyntheticModel.Quant.Q8_0, SEED);
        assertEquals(shape(small.config(), false), GpuModelForward.Shape.of(LlamaForwardModel.of(small)));
    }

    private static int[] randomTokens(LlamaModel model, int count, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        int[] tokens = new int[count];
        for (int i = 0; i < count; i++) {
            tokens[i] = random.nextInt(model.config().vocabSize());
        }
        return tokens;
    }

    /** Odd sizes: dim 96, 3 query heads over 1 KV head of 32, RoPE on the first 16 dimensions, hidden 200. */
    private static LlamaConfig oddConfig() {
        return new LlamaConfig(96, 200, 2, 3, 1, 301, 4096, 10000f, 16, 1e-5f);
    }

    /**
     * The odd shape with float32 weights (Gaussian, standard deviation 1/sqrt(cols)), norms 1 + N(0, 0.1^2), Q, K and
     * V biases N(0, 0.5^2) (Qwen2) and RoPE divisors in [1, 4) (Llama 3.1), an untied classifier.
     */
    private static LlamaModel oddModel(long seed) {
        LlamaConfig c = oddConfig();
        SplittableRandom random = new SplittableRandom(seed);
        int dim = c.dim();
        int kvDim = c.kvDim();
        int hidden = c.hiddenDim();
        List<LlamaWeights.Layer> layers = new ArrayList<>();
        for (int l = 0; l < c.layers(); l++) {
            layers.add(new LlamaWeights.Layer(norm(dim, random), matrix("wq", dim, dim, random),
                    matrix("wk", kvDim, dim, random), matrix("wv", kvDim, dim, random),
                    matrix("wo", dim, dim, random), norm(dim, random), matrix("gate", hidden, dim, random),
                    matrix("down", dim, hidden, random), matrix("up", hidden, dim, random),
                    gaussian(dim, 0.5, random), gaussian(kvDim, 0.5, random), gaussian(kvDim, 0.5, random)));
        }
        float[] divisors = new float[c.ropeDim() / 2];
        for (int i = 0; i < divisors.length; i++) {
            divisors[i] = (float) (1 + 3 * random.nextDouble());
        }
        return new LlamaModel(c, new LlamaWeights(matrix("embedding", c.vocabSize(), dim, random), layers,
                norm(dim, random), matrix("output", c.vocabSize(), dim, random), divisors), null);
    }

    private static WeightMatrix matrix(String name, int rows, int cols, SplittableRandom random) {
        return WeightMatrix.ofFloats(name, rows, cols, gaussian(rows * cols, 1 / Math.sqrt(cols), random));
    }

    private static float[] norm(int n, SplittableRandom random) {
        float[] out = gaussian(n, 0.1, random);
        for (int i = 0; i < n; i++) {
            out[i] += 1;
        }
        return out;
    }

    private static float[] gaussian(int n, double std, SplittableRandom random) {
        float[] out = new float[n];
        for (int i = 0; i < n; i++) {
            // Box-Muller: SplittableRandom has no nextGaussian in Java 17
            double u = 1 - random.nextDouble();
            double v = random.nextDouble();
            out[i] = (float) (std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v));
        }
        return out;
    }
}
