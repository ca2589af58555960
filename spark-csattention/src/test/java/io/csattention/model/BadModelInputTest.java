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

        Path unknown = dir.resolve("unknown.gguf");
        GgufWriter.of(model, TensorType.F32).put("general.architecture", "gemma2").write(unknown);
        assertEquals("architecture must be one of llama, qwen2; general.architecture=gemma2",
                assertThrows(IllegalArgumentException.class, () -> ModelFiles.load(unknown)).getMessage());

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
    void llama2cFileLongerThanItsHeaderImplies() throws IOException {
        Path file = Files.write(dir.resolve("long.bin"),
                Arrays.copyOf(Files.readAllBytes(Stories260K.path()), 1_056_540 + 4));
        assertEquals("llama2.c checkpoint must be exactly the 1056540 bytes its header implies (a wrong header, or "
                + "not a legacy export); size=1056544 (model=" + file + ")",
                assertThrows(IOException.class, () -> ModelFiles.load(file)).getMessage());
    }

    /**
     * 200,000 nested one-element arrays (2.4 MB, the file that killed the executor with a StackOverflowError): read
     * without recursion, refused at depth 9.
     */
    @Test
    void deeplyNestedGgufArraysAreRefusedWithoutRecursion() throws IOException {
        int depth = 200_000;
        ByteBuffer b = ByteBuffer.allocate(4 + 4 + 8 + 8 + 8 + 8 + 4 + 12 * depth + 4 + 8)
                .order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(GgufFile.MAGIC).putInt(3).putLong(0).putLong(1).putLong(8).put("x.nested".getBytes())
                .putInt(GgufFile.ARRAY);
        for (int i = 0; i < depth; i++) {
            b.putInt(GgufFile.ARRAY).putLong(1);
        }
        b.putInt(GgufFile.UINT8).putLong(0);
        Path file = Files.write(dir.resolve("nested.gguf"), b.array());
        assertEquals("GGUF metadata arrays must nest at most 8 deep; x.nested.depth=9 (model=" + file + ")",
                assertThrows(IOException.class, () -> ModelFiles.load(file)).getMessage());
    }

    @Test
    void ggufAlignmentMustBeAPositivePowerOfTwo() throws IOException {
        for (Object alignment : new Object[] {0, -32L, 24, 1 << 31}) {
            Path file = dir.resolve("align.gguf");
            GgufWriter.of(model, TensorType.F32).put("general.alignment", alignment).write(file);
            String shown = alignment instanceof Integer i ? Long.toString(i & 0xFFFFFFFFL) : alignment.toString();
            assertEquals("GGUF metadata general.alignment must be a power of two in [1, 2^30]; general.alignment="
                    + shown + " (model=" + file + ")",
                    assertThrows(IOException.class, () -> ModelFiles.load(file)).getMessage());
        }
    }

    @Test
    void ggufTensorsMustHavePositiveDimensionsAndAlignedOffsetsInsideTheFile() throws IOException {
        Path zero = dir.resolve("zero.gguf");
        GgufWriter.of(model, TensorType.F32).raw("blk.0.extra.weight", 0, new long[] {64, 0}, new byte[0])
                .write(zero);
        assertEquals("GGUF tensor dimensions must be > 0; blk.0.extra.weight.dims[1]=0 (model=" + zero + ")",
                assertThrows(IOException.class, () -> ModelFiles.load(zero)).getMessage());

        Path negative = dir.resolve("negative.gguf");
        GgufWriter.of(model, TensorType.F32).offset("blk.0.attn_q.weight", -64).write(negative);
        assertEquals("GGUF tensor offset must be >= 0; blk.0.attn_q.weight.offset=-64 (model=" + negative + ")",
                assertThrows(IOException.class, () -> ModelFiles.load(negative)).getMessage());

        Path misaligned = dir.resolve("misaligned.gguf");
        GgufWriter.of(model, TensorType.F32).offset("blk.0.attn_q.weight", 4).write(misaligned);
        assertEquals("GGUF tensor offset must be a multiple of general.alignment=32; blk.0.attn_q.weight.offset=4 "
                + "(model=" + misaligned + ")",
                assertThrows(IOException.class, () -> ModelFiles.load(misaligned)).getMessage());

        Path outside = dir.resolve("outside.gguf");
        Path good = dir.resolve("good.gguf");
        GgufWriter.of(model, TensorType.F32).write(good);
        // the last tensor, 64 float32, ends the file: its data section starts size - 256 - offset into the file
        long dataOffset = Files.size(good) - 256 - GgufFile.read(good).tensors().get("output_norm.weight").offset();
        GgufWriter.of(model, TensorType.F32).offset("output_norm.weight", 1L << 40).write(outside);
        assertEquals("model file is truncated: tensor output_norm.weight ends at byte "
                + (dataOffset + (1L << 40) + 256) + "; size=" + Files.size(good) + " (model=" + outside + ")",
                assertThrows(IOException.class, () -> ModelFiles.load(outside)).getMessage());
    }

    @Test
    void ggufHeadCountsMustBePositiveAndDivideTheDimensions() throws IOException {
        Path none = dir.resolve("heads0.gguf");
        GgufWriter.of(model, TensorType.F32).put("llama.attention.head_count", 0).write(none);
        assertEquals("GGUF metadata llama.attention.head_count must be an integer in [1, 2147483647]; "
                + "llama.attention.head_count=0 (model=" + none + ")",
                assertThrows(IOException.class, () -> ModelFiles.load(none)).getMessage());

        Path kvNone = dir.resolve("kv0.gguf");
        GgufWriter.of(model, TensorType.F32).put("llama.attention.head_count_kv", 0).write(kvNone);
        assertEquals("GGUF metadata llama.attention.head_count_kv must be an integer in [1, 2147483647]; "
                + "llama.attention.head_count_kv=0 (model=" + kvNone + ")",
                assertThrows(IOException.class, () -> ModelFiles.load(kvNone)).getMessage());

        Path seven = dir.resolve("heads7.gguf");
        GgufWriter.of(model, TensorType.F32).put("llama.attention.head_count", 7).write(seven);
        assertEquals("GGUF metadata llama.embedding_length must be a multiple of llama.attention.head_count=7; "
                + "llama.embedding_length=64 (model=" + seven + ")",
                assertThrows(IOException.class, () -> ModelFiles.load(seven)).getMessage());

        Path three = dir.resolve("kv3.gguf");
        GgufWriter.of(model, TensorType.F32).put("llama.attention.head_count_kv", 3).write(three);
        assertEquals("GGUF metadata llama.attention.head_count must be a multiple of llama.attention.head_count_kv=3; "
                + "llama.attention.head_count=8 (model=" + three + ")",
                assertThrows(IOException.class, () -> ModelFiles.load(three)).getMessage());

        Path huge = dir.resolve("dim.gguf");
        GgufWriter.of(model, TensorType.F32).put("llama.embedding_length", -64L).write(huge);
        assertEquals("GGUF metadata llama.embedding_length must be an integer in [1, 2147483647]; "
                + "llama.embedding_length=-64 (model=" + huge + ")",
                assertThrows(IOException.class, () -> ModelFiles.load(huge)).getMessage());
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
