package io.csattention.model;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

class GgufModelTest {

    private static final int[] PROMPT = {1, 361, 1, 9, 43, 13, 275, 7, 401, 295};

    @TempDir
    Path dir;

    private final LlamaModel llama2c = Stories260K.model();

    @Test
    void float32GgufGivesTheSameLogitsAsTheLlama2cCheckpoint() throws IOException {
        Path file = dir.resolve("stories260K-f32.gguf");
        GgufWriter.of(llama2c, TensorType.F32).write(file);
        LlamaModel gguf = ModelFiles.load(file);
        assertEquals(llama2c.config(), gguf.config());
        assertSame(gguf.weights().tokenEmbedding(), gguf.weights().classifier(), "no output.weight means tied");
        assertArrayEquals(llama2c.newSession().prefill(PROMPT), gguf.newSession().prefill(PROMPT), 0f);
        assertArrayEquals(Stories260K.greedy(llama2c, PROMPT, 16), Stories260K.greedy(gguf, PROMPT, 16));
    }

    /**
     * Greedy generation stops at the file's end-of-sequence id, without emitting it: the id is the fourth token the
     * model generates greedily (found with no stop set), so the run with it set ends after three.
     */
    @Test
    void greedyGenerationStopsAtTheEndOfSequenceId() throws IOException {
        Session reference = llama2c.newSession();
        int[] free = Generation.run(reference, reference.prefill(PROMPT), new Sampler(0, 0.9f, 1), 8, new int[0])
                .tokens();
        assertArrayEquals(Stories260K.greedy(llama2c, PROMPT, 8), free, "the loop is greedy decoding");
        int eos = free[3];
        int first = 0;
        while (free[first] != eos) {
            first++;
        }
        Path file = dir.resolve("with-eos.gguf");
        GgufWriter.of(llama2c, TensorType.F32).put("tokenizer.ggml.eos_token_id", eos).write(file);
        LlamaModel model = ModelFiles.load(file);
        assertArrayEquals(new int[] {eos}, model.stopTokens());
        Session session = model.newSession();
        Generation.Result stopped = Generation.run(session, session.prefill(PROMPT), new Sampler(0, 0.9f, 1), 8,
                model.stopTokens());
        assertTrue(stopped.stopped());
        assertArrayEquals(Arrays.copyOf(free, first), stopped.tokens());
        Session again = model.newSession();
        Generation.Result ignored = Generation.run(again, again.prefill(PROMPT), new Sampler(0, 0.9f, 1), 8,
                new int[0]);
        assertArrayEquals(free, ignored.tokens(), "ignoring the stop set generates every token");
    }

    @Test
    void ropeFrequencyDivisorsAndLinearScalingChangeTheRotation() throws IOException {
        float[] ones = new float[llama2c.config().ropeDim() / 2];
        java.util.Arrays.fill(ones, 1f);
        Path unit = dir.resolve("unit.gguf");
        GgufWriter.of(llama2c, TensorType.F32).tensor("rope_freqs.weight", TensorType.F32, ones, 1, ones.length)
                .write(unit);
        assertArrayEquals(llama2c.newSession().prefill(PROMPT), ModelFiles.load(unit).newSession().prefill(PROMPT),
                0f, "divisors of 1 are plain RoPE");

        float[] halves = ones.clone();
        java.util.Arrays.fill(halves, 0.5f);
        Path divided = dir.resolve("divided.gguf");
        GgufWriter.of(llama2c, TensorType.F32).tensor("rope_freqs.weight", TensorType.F32, halves, 1, halves.length)
                .write(divided);
        Path linear = dir.resolve("linear.gguf");
        GgufWriter.of(llama2c, TensorType.F32).put("llama.rope.scaling.type", "linear")
                .put("llama.rope.scaling.factor", 0.5f).write(linear);
        float[] fromDivisors = ModelFiles.load(divided).newSession().prefill(PROMPT);
        assertArrayEquals(fromDivisors, ModelFiles.load(linear).newSession().prefill(PROMPT), 0f);
        assertTrue(Math.abs(fromDivisors[7] - llama2c.newSession().prefill(PROMPT)[7]) > 1e-4, "rotation changed");

        Path yarn = dir.resolve("yarn.gguf");
        GgufWriter.of(llama2c, TensorType.F32).put("llama.rope.scaling.type", "yarn").write(yarn);
        assertEquals("rope scaling must be none or linear; llama.rope.scaling.type=yarn",
                org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                        () -> ModelFiles.load(yarn)).getMessage());
    }

    @Test
    void quantizedAndHalfPrecisionTensorsDecodeCloseToFloat32() throws IOException {
        float[] reference = llama2c.newSession().prefill(PROMPT);
        // bounds on max |logit difference| per type, about 4x the measured 0.024 (F16), 0.18 (BF16), 0.28 (Q8_0);
        // 4 bits are very lossy on this 260K-parameter model (8.1), so Q4_0 only checks that nothing blows up
        double[] bounds = {0.1, 0.75, 1.2, 32};
        TensorType[] types = {TensorType.F16, TensorType.BF16, TensorType.Q8_0, TensorType.Q4_0};
        for (int i = 0; i < types.length; i++) {
            Path file = dir.resolve("stories260K-" + types[i] + ".gguf");
            GgufWriter.of(llama2c, types[i]).write(file);
            LlamaModel gguf = ModelFiles.load(file);
            assertEquals(types[i], gguf.weights().layers().get(0).wq().type());
            float[] logits = gguf.newSession().prefill(PROMPT);
            double worst = 0;
            for (int j = 0; j < logits.length; j++) {
                worst = Math.max(worst, Math.abs(logits[j] - reference[j]));
            }
            assertTrue(worst < bounds[i], types[i] + ": max |logit difference| " + worst);
        }
    }

    @Test
    void quantizedRowsDecodeToScaleTimesCode() {
        float[] values = new float[64];
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) Math.sin(i * 0.7) * (i < 32 ? 1 : 3);
        }
        for (TensorType type : new TensorType[] {TensorType.Q8_0, TensorType.Q4_0}) {
            WeightMatrix m = WeightMatrix.of("t", type, 1, 64,
                    java.nio.ByteBuffer.wrap(GgufWriter.encode(type, values)));
            float[] row = new float[64];
            m.row(0, row);
            for (int b = 0; b < 2; b++) {
                float scale = (b == 0 ? 1 : 3) / (type == TensorType.Q8_0 ? 127f : 8f);
                // Q8_0 rounds to the nearest code; Q4_0's codes span [-8, 7] scales, so the extreme of the other sign
                // is clamped by up to one scale
                double bound = type == TensorType.Q8_0 ? scale * 0.51 : scale * 1.01;
                for (int j = b * 32; j < b * 32 + 32; j++) {
                    assertEquals(values[j], row[j], bound + 1e-3, type + " element " + j);
                }
            }
        }
    }

    @Test
    void kQuantRowsDecodeWithinOneQuantizationStep() {
        java.util.Random random = new java.util.Random(20261128L);
        float[] values = new float[512];
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) (random.nextGaussian() * (1 + i / 128));
        }
        for (TensorType type : new TensorType[] {TensorType.Q4_K, TensorType.Q5_K, TensorType.Q6_K}) {
            WeightMatrix m = WeightMatrix.of("t", type, 2, 256,
                    java.nio.ByteBuffer.wrap(GgufWriter.encode(type, values)));
            float[] row = new float[256];
            for (int r = 0; r < 2; r++) {
                m.row(r, row);
                int sub = type == TensorType.Q6_K ? 16 : 32;
                for (int start = 0; start < 256; start += sub) {
                    float min = Float.POSITIVE_INFINITY;
                    float max = Float.NEGATIVE_INFINITY;
                    for (int j = start; j < start + sub; j++) {
                        min = Math.min(min, values[r * 256 + j]);
                        max = Math.max(max, values[r * 256 + j]);
                    }
                    double step = type == TensorType.Q6_K ? Math.max(max, -min) / 31
                            : (max - Math.min(0, min)) / (type == TensorType.Q4_K ? 15 : 31);
                    for (int j = start; j < start + sub; j++) {
                        assertEquals(values[r * 256 + j], row[j], step, type + " row " + r + " element " + j);
                    }
                }
            }
        }
    }

    @Test
    void readsASentencePieceVocabularyFromMetadata() throws IOException {
        List<String> tokens = new ArrayList<>(List.of("<unk>", "<s>", "</s>"));
        for (int b = 0; b < 256; b++) {
            tokens.add(String.format("<0x%02X>", b));
        }
        tokens.addAll(List.of("\u2581", "a", "b", "\u2581a", "ab", "\u2581ab"));
        List<Float> scores = new ArrayList<>();
        for (int i = 0; i < tokens.size(); i++) {
            scores.add(i >= 259 ? (float) i : 0f);
        }
        Path file = dir.resolve("vocab.gguf");
        GgufWriter.of(llama2c, TensorType.F32).put("tokenizer.ggml.model", "llama")
                .put("tokenizer.ggml.tokens", tokens).put("tokenizer.ggml.scores", scores)
                .put("tokenizer.ggml.bos_token_id", 1).write(file);
        Tokenizer tokenizer = ModelFiles.load(file).tokenizer().orElseThrow();
        int[] ids = tokenizer.encode("ab a\n");
        // "▁ab" merges best; "▁a" next; "\n" has no piece and falls back to its byte
        assertArrayEquals(new int[] {1, 264, 262, 3 + '\n'}, ids);
        assertEquals("ab a\n", tokenizer.decode(ids));
    }

    @Test
    void metadataOfEveryTypeIsRead() throws IOException {
        Path file = dir.resolve("meta.gguf");
        GgufWriter.of(llama2c, TensorType.F32).version(2).put("x.list", List.of(1, 2, 3)).write(file);
        GgufFile gguf = GgufFile.read(file);
        assertEquals(2, gguf.version());
        assertEquals("llama", gguf.string("general.architecture"));
        assertEquals(64L, gguf.integer("llama.embedding_length", -1));
        assertEquals(1e-5, gguf.real("llama.attention.layer_norm_rms_epsilon", 0), 1e-12);
        assertEquals(List.of(1L, 2L, 3L), gguf.metadata().get("x.list"));
        assertEquals(Arrays.asList(64L, 512L), Arrays.stream(gguf.tensors().get("token_embd.weight").dims())
                .boxed().toList());
        assertTrue(Files.size(file) > 1_000_000);
    }
}
