package io.csattention.model;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** Every way a model file or a token sequence can be wrong ends in one exact, readable message. */
class BadModelInputTest {

    @TempDir
    Path dir;

    private final LlamaModel model = Stories260K.model();

    @Test
    void missingFile() {
        Path file = dir.resolve("nope.bin");
        assertEquals("model file must exist; model=" + file,
                assertThrows(IOException.class, () -> ModelFiles.load(file)).getMessage());
    }

    @Test
    void neitherGgufNorLlama2c() throws IOException {
        Path file = Files.writeString(dir.resolve("notes.txt"), "these are not the weights you are looking for");
        assertEquals("model file must be GGUF or a llama2.c checkpoint; model=" + file,
                assertThrows(IOException.class, () -> ModelFiles.load(file)).getMessage());
        Path tiny = Files.write(dir.resolve("tiny.bin"), new byte[] {1, 2, 3});
        assertEquals("model file must be GGUF or a llama2.c checkpoint; model=" + tiny + " size=3",
                assertThrows(IOException.class, () -> ModelFiles.load(tiny)).getMessage());
    }

    @Test
    void truncatedLlama2cCheckpoint() throws IOException {
        Path file = Files.write(dir.resolve("cut.bin"),
                Arrays.copyOf(Files.readAllBytes(Stories260K.path()), 500_000));
        assertEquals("model file is truncated: a llama2.c checkpoint of this header needs 1056540 bytes; "
                        + "size=500000 (model=" + file + ")",
                assertThrows(IOException.class, () -> ModelFiles.load(file)).getMessage());
    }

    @Test
    void truncatedGguf() throws IOException {
        byte[] whole = GgufWriter.of(model, TensorType.F32).bytes();
        Path header = Files.write(dir.resolve("header.gguf"), Arrays.copyOf(whole, 100));
        assertEquals("model file is truncated: the GGUF header ends early; model=" + header,
                assertThrows(IOException.class, () -> ModelFiles.load(header)).getMessage());
        Path data = Files.write(dir.resolve("data.gguf"), Arrays.copyOf(whole, whole.length / 2));
        String message = assertThrows(IOException.class, () -> ModelFiles.load(data)).getMessage();
        assertEquals("model file is truncated: tensor blk.2.attn_k.weight ends at byte 522656; size="
                + whole.length / 2 + " (model=" + data + ")", message);
    }

    @Test
    void unsupportedGgufVersionArchitectureAndTensorType() throws IOException {
        Path v1 = dir.resolve("v1.gguf");
        GgufWriter.of(model, TensorType.F32).version(1).write(v1);
        assertEquals("GGUF version must be 2 or 3; version=1 (model=" + v1 + ")",
                assertThrows(IOException.class, () -> ModelFiles.load(v1)).getMessage());

        Path qwen = dir.resolve("qwen.gguf");
        GgufWriter.of(model, TensorType.F32).put("general.architecture", "qwen2").write(qwen);
        assertEquals("architecture must be llama; general.architecture=qwen2",
                assertThrows(IllegalArgumentException.class, () -> ModelFiles.load(qwen)).getMessage());

        Path q2k = dir.resolve("q2k.gguf");
        GgufWriter writer = new GgufWriter().put("general.architecture", "llama")
                .put("llama.context_length", 512).put("llama.embedding_length", 256)
                .put("llama.feed_forward_length", 256).put("llama.block_count", 1)
                .put("llama.attention.head_count", 8)
                .tensor("token_embd.weight", TensorType.F32, new float[256 * 4], 4, 256)
                .tensor("blk.0.attn_norm.weight", TensorType.F32, new float[256], 1, 256)
                .raw("blk.0.attn_q.weight", 10, new long[] {256, 256}, new byte[84 * 256]);
        writer.write(q2k);
        assertEquals("tensor type must be one of F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, BF16; "
                        + "blk.0.attn_q.weight.type=Q2_K",
                assertThrows(IllegalArgumentException.class, () -> ModelFiles.load(q2k)).getMessage());
    }

    @Test
    void newerLlama2cExportVersion() throws IOException {
        ByteBuffer header = ByteBuffer.allocate(256).order(ByteOrder.LITTLE_ENDIAN).putInt(0x616b3432).putInt(2);
        Path file = Files.write(dir.resolve("v2.bin"), header.array());
        assertEquals("llama2.c checkpoint must be the legacy export (version 0); model=" + file,
                assertThrows(IOException.class, () -> ModelFiles.load(file)).getMessage());
    }

    @Test
    void tokenOutsideTheVocabulary() {
        Session session = model.newSession();
        assertEquals("token ids must be in [0, 512); token=512",
                assertThrows(IllegalArgumentException.class, () -> session.prefill(new int[] {1, 512})).getMessage());
        assertEquals("token ids must be in [0, 512); token=-1",
                assertThrows(IllegalArgumentException.class, () -> session.decode(-1)).getMessage());
        assertEquals(0, session.position(), "a refused input changes nothing");
    }

    @Test
    void contextLongerThanTheModelsContextLength() {
        Session session = model.newSession();
        assertEquals("context must be at most the model's context length 512 tokens; tokens=513",
                assertThrows(IllegalArgumentException.class, () -> session.prefill(new int[513])).getMessage());
    }
}
