package io.csattention.model;

import io.csattention.baseline.AttentionMethod;
import io.csattention.core.CSAttentionSettings;
import io.csattention.core.FloatMatrix;
import io.csattention.core.KeyValueCache;
import io.csattention.device.Backends;
import io.csattention.device.CapturedLog;
import io.csattention.device.PrefillDevice;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.IntFunction;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The routed model prefill ({@link DevicePrefill}): {@code cpu} is the plain {@link Session#prefill}, bit for bit;
 * {@code gpu} without a device is one line; {@code auto} without one falls back with one logged line; rows loaded
 * into a session ({@link Session#loadPrefill}) continue exactly as the session they came from. The GPU case, the
 * routed prefill on a device against the CPU's, is {@code GpuModelForwardTest}'s (in the package
 * {@code kernels/device-check.sh} runs on a GPU machine).
 */
class DevicePrefillTest {

    static final long SEED = 20261211L;

    private static int[] randomTokens(LlamaModel model, int count, long seed) {
        System.out.println("DevicePrefillTest seed=" + seed);
        SplittableRandom random = new SplittableRandom(seed);
        int[] tokens = new int[count];
        tokens[0] = Stories260K.BOS;
        for (int i = 1; i < count; i++) {
            tokens[i] = random.nextInt(model.config().vocabSize());
        }
        return tokens;
    }

    @Test
    void cpuIsThePlainSessionPrefillBitForBit() {
        LlamaModel model = Stories260K.model();
        // 150 tokens: three CPU prefill blocks, the last one partial
        int[] tokens = randomTokens(model, 150, SEED);
        Session plain = model.newSession();
        float[] want = plain.prefill(tokens);
        Session routed = model.newSession();
        float[] got = DevicePrefill.prefill(routed, tokens, Backends.Mode.CPU, 0);
        assertArrayEquals(want, got);
        assertSameContext(model, plain, routed);
        assertArrayEquals(plain.decode(7), routed.decode(7));
    }

    @Test
    void gpuWithoutAUsableDeviceIsOneLine() {
        String reason = Backends.gpuUnavailableReason(0);
        Assumptions.assumeTrue(reason != null, "a CUDA device is usable here");
        LlamaModel model = Stories260K.model();
        Session session = model.newSession();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> DevicePrefill.prefill(session, new int[] {1, 361, 9}, Backends.Mode.GPU, 0));
        assertEquals("device gpu needs a usable CUDA device: " + reason + "; device=gpu", e.getMessage());
        assertEquals(0, session.position());
    }

    @Test
    void autoWithoutAUsableDeviceFallsBackToTheCpuAndLogsOneLine() {
        int ordinal = 11;  // an ordinal no other test uses, so this JVM has not logged its prefill fallback yet
        String reason = Backends.gpuUnavailableReason(ordinal);
        Assumptions.assumeTrue(reason != null, "GPU " + ordinal + " is usable here");
        LlamaModel model = Stories260K.model();
        int[] tokens = randomTokens(model, 70, SEED + 1);
        Session plain = model.newSession();
        float[] want = plain.prefill(tokens);
        try (CapturedLog log = CapturedLog.of(Backends.class)) {
            Session first = model.newSession();
            assertArrayEquals(want, DevicePrefill.prefill(first, tokens, Backends.Mode.AUTO, ordinal));
            assertSameContext(model, plain, first);
            Session second = model.newSession();
            assertArrayEquals(want, DevicePrefill.prefill(second, tokens, Backends.Mode.AUTO, ordinal));
            assertEquals(List.of("device: cpu for the model prefill (auto fell back from gpu " + ordinal + ": "
                    + reason + ")"), log.lines());
        }
    }

    @Test
    void aNegativeOrdinalIsRefusedUnderGpuAndAuto() {
        LlamaModel model = Stories260K.model();
        for (Backends.Mode mode : new Backends.Mode[] {Backends.Mode.GPU, Backends.Mode.AUTO}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> DevicePrefill.prefill(model.newSession(), new int[] {1, 2}, mode, -1));
            assertEquals("gpu ordinal must be >= 0; gpu=-1", e.getMessage());
        }
        // bad tokens are the CPU path's errors, before any device is looked for
        IllegalArgumentException bad = assertThrows(IllegalArgumentException.class,
                () -> DevicePrefill.prefill(model.newSession(), new int[] {1, 600}, Backends.Mode.GPU, 0));
        assertEquals("token ids must be in [0, 512); token=600", bad.getMessage());
    }

    /**
     * Rows captured from a CPU prefill and loaded into a new session: the same caches and prefill queries, and decode
     * steps with the same bits, exact and with csattention's index built over the loaded rows; in float16 and float32
     * caches (the float16 rows are loaded as the cache returns them, which round to themselves).
     */
    @Test
    void loadedRowsContinueExactlyAsTheSessionTheyCameFrom() {
        LlamaModel model = Stories260K.model();
        int[] tokens = randomTokens(model, 130, SEED + 2);
        for (KeyValueCache.Precision precision : new KeyValueCache.Precision[] {KeyValueCache.Precision.F16,
                KeyValueCache.Precision.F32}) {
            Session original = model.newSession(precision);
            float[] logits = original.prefill(tokens);
            Session loaded = model.newSession(precision);
            assertArrayEquals(logits, loaded.loadPrefill(tokens, rowsOf(model, original), logits));
            assertSameContext(model, original, loaded);
            Session exactOriginal = original.fork();
            Session exactLoaded = loaded.fork();
            CSAttentionSettings settings = CSAttentionSettings.defaults().withSparsity(0.5);
            original.useAttention(AttentionMethod.CSATTENTION, settings);
            loaded.useAttention(AttentionMethod.CSATTENTION, settings);
            int token = Sampler.argmax(logits);
            for (int step = 0; step < 3; step++) {
                float[] want = exactOriginal.decode(token);
                assertArrayEquals(want, exactLoaded.decode(token), precision + " exact step " + step);
                float[] sparse = original.decode(token);
                assertArrayEquals(sparse, loaded.decode(token), precision + " csattention step " + step);
                token = Sampler.argmax(want);
            }
        }
    }

    @Test
    void loadingNeedsAnEmptySessionAndRowsOfEveryToken() {
        LlamaModel model = Stories260K.model();
        int[] tokens = {1, 361, 9};
        Session source = model.newSession();
        float[] logits = source.prefill(tokens);
        Session busy = model.newSession();
        busy.prefill(tokens);
        assertEquals("a loaded prefill needs an empty session; position=3", assertThrows(IllegalStateException.class,
                () -> busy.loadPrefill(tokens, rowsOf(model, source), logits)).getMessage());
        assertEquals("a loaded prefill's rows must cover its 2 tokens; layer 0 tokens=3",
                assertThrows(IllegalArgumentException.class, () -> model.newSession().loadPrefill(new int[] {1, 361},
                        rowsOf(model, source), logits)).getMessage());
        float[] nan = logits.clone();
        nan[4] = Float.NaN;
        assertTrue(assertThrows(IllegalArgumentException.class, () -> model.newSession().loadPrefill(tokens,
                rowsOf(model, source), nan)).getMessage().startsWith("the model's logits must be finite"));
    }

    /** The rows {@code session}'s prefill produced, read back from its caches and prefill queries. */
    private static IntFunction<PrefillDevice.LayerRows> rowsOf(LlamaModel model, Session session) {
        LlamaConfig c = model.config();
        int n = session.position();
        int headSize = c.headSize();
        int group = c.groupSize();
        return layer -> {
            float[] keys = new float[n * c.kvDim()];
            float[] values = new float[n * c.kvDim()];
            float[] queries = new float[n * c.dim()];
            for (int g = 0; g < c.kvHeads(); g++) {
                float[] k = session.cache(layer, g).keyMatrix().data();
                float[] v = session.cache(layer, g).valueMatrix().data();
                float[] q = session.prefillQueries(layer, g).data();
                for (int t = 0; t < n; t++) {
                    System.arraycopy(k, t * headSize, keys, t * c.kvDim() + g * headSize, headSize);
                    System.arraycopy(v, t * headSize, values, t * c.kvDim() + g * headSize, headSize);
                    System.arraycopy(q, t * group * headSize, queries, t * c.dim() + g * group * headSize,
                            group * headSize);
                }
            }
            return new PrefillDevice.LayerRows(n, keys, values, queries);
        };
    }

    private static void assertSameContext(LlamaModel model, Session want, Session got) {
        assertEquals(want.position(), got.position());
        LlamaConfig c = model.config();
        for (int l = 0; l < c.layers(); l++) {
            for (int g = 0; g < c.kvHeads(); g++) {
                String where = " of layer " + l + " kv head " + g;
                assertArrayEquals(data(want.cache(l, g).keyMatrix()), data(got.cache(l, g).keyMatrix()), "keys" + where);
                assertArrayEquals(data(want.cache(l, g).valueMatrix()), data(got.cache(l, g).valueMatrix()),
                        "values" + where);
                assertArrayEquals(data(want.prefillQueries(l, g)), data(got.prefillQueries(l, g)), "queries" + where);
            }
        }
    }

    private static float[] data(FloatMatrix m) {
        return Arrays.copyOf(m.data(), m.rows() * m.cols());
    }

}
