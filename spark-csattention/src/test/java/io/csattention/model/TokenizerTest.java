package io.csattention.model;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class TokenizerTest {

    @TempDir
    Path dir;

    /** llama2.c's layout: <unk>, <s>, </s>, 256 byte pieces, then merges; spaces are plain spaces. */
    private Path writeLlama2cTokenizer(List<String> merges) throws IOException {
        List<String> pieces = new ArrayList<>(List.of("<unk>", "\n<s>\n", "\n</s>\n"));
        for (int b = 0; b < 256; b++) {
            pieces.add(String.format("<0x%02X>", b));
        }
        pieces.addAll(merges);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(le(16));
        for (int i = 0; i < pieces.size(); i++) {
            byte[] utf8 = pieces.get(i).getBytes(StandardCharsets.UTF_8);
            out.writeBytes(le(Float.floatToIntBits(i >= 259 ? -1000f + i : 0f)));
            out.writeBytes(le(utf8.length));
            out.writeBytes(utf8);
        }
        return Files.write(dir.resolve("tokenizer.bin"), out.toByteArray());
    }

    private static byte[] le(int v) {
        return ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(v).array();
    }

    @Test
    void encodesByBestScoringMergesAndDecodesBack() throws IOException {
        Path file = writeLlama2cTokenizer(List.of(" ", "O", "n", "c", "e", "On", "ce", " On", " Once", "Once"));
        Tokenizer tokenizer = Tokenizer.readLlama2c(file, 269);
        // " Once": " On" (id 266) + "ce" (265) merge into " Once" (267), the highest score among possible merges
        int[] ids = tokenizer.encode("Once!");
        assertArrayEquals(new int[] {1, 267, 3 + '!'}, ids);
        assertEquals("Once!", tokenizer.decode(ids));
    }

    @Test
    void truncatedTokenizerFile() throws IOException {
        Path file = writeLlama2cTokenizer(List.of());
        Path cut = Files.write(dir.resolve("cut.bin"), java.util.Arrays.copyOf(Files.readAllBytes(file), 100));
        assertEquals("tokenizer file is truncated at piece 7; tokenizer=" + cut,
                assertThrows(IOException.class, () -> Tokenizer.readLlama2c(cut, 259)).getMessage());
    }
}
