package io.csattention.model;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * Byte-level BPE on small vocabularies written as a GGUF file's {@code tokenizer.ggml.*} metadata and read by
 * {@link GgufModel#tokenizer}, as a model file's would be; expected ids worked out by hand from llama.cpp's rules.
 */
class ByteLevelBpeTokenizerTest {

    @TempDir
    Path dir;

    private Tokenizer load(GgufWriter writer, String name) throws IOException {
        Path file = dir.resolve(name + ".gguf");
        writer.write(file);
        return GgufModel.tokenizer(GgufFile.read(file));
    }

    // ---- small vocabularies: every byte, a few merges ----------------------------------------------------------

    private static List<String> byteTokens() {
        List<String> tokens = new ArrayList<>();
        for (int b = 0; b < 256; b++) {
            tokens.add(String.valueOf(Tokenizer.ByteLevel.charOf(b)));
        }
        return tokens;
    }

    private GgufWriter small(List<String> extra, List<String> merges, String pre) {
        List<String> tokens = byteTokens();
        tokens.addAll(extra);
        GgufWriter w = new GgufWriter().put("tokenizer.ggml.model", "gpt2").put("tokenizer.ggml.tokens", tokens)
                .put("tokenizer.ggml.merges", merges);
        return pre == null ? w : w.put("tokenizer.ggml.pre", pre);
    }

    private static int id(String piece) {
        return 256 + List.of("ab", "abc", "aa", "<|x|>").indexOf(piece);
    }

    @Test
    void mergesByRankThenLeftToRightAndLlama3TakesWholeTokens() throws IOException {
        List<String> extra = List.of("ab", "abc", "aa", "<|x|>");
        List<String> merges = List.of("a b", "a a");
        Tokenizer gpt2 = load(small(extra, merges, "gpt-2"), "gpt2");
        // "a a" ties at every position: merged left to right, the odd "a" left over
        assertArrayEquals(new int[] {id("aa"), (int) 'a'}, gpt2.encode("aaa"));
        // "a b" outranks "a a": "aab" is "a" + "ab", not "aa" + "b"
        assertArrayEquals(new int[] {(int) 'a', id("ab")}, gpt2.encode("aab"));
        // no merge builds "abc"; only Llama 3's pre-tokenizer takes a piece that is a token whole
        assertArrayEquals(new int[] {id("ab"), (int) 'c'}, gpt2.encode("abc"));
        Tokenizer llama3 = load(small(extra, merges, "llama-bpe").put("tokenizer.ggml.add_bos_token", false), "l3");
        assertArrayEquals(new int[] {id("abc")}, llama3.encode("abc"));
    }

    @Test
    void controlPiecesComeOnlyFromEncodeWithSpecials() throws IOException {
        List<Integer> types = new ArrayList<>(java.util.Collections.nCopies(259, Tokenizer.NORMAL));
        types.add(Tokenizer.CONTROL);
        Tokenizer t = load(small(List.of("ab", "abc", "aa", "<|x|>"), List.of("a b"), "gpt-2")
                .put("tokenizer.ggml.token_type", types), "control");
        int[] plain = t.encode("ab<|x|>");
        assertArrayEquals(new int[] {id("ab"), (int) '<', (int) '|', (int) 'x', (int) '|', (int) '>'}, plain);
        assertArrayEquals(new int[] {id("ab"), id("<|x|>")}, t.encodeWithSpecials("ab<|x|>"));
        assertEquals("ab<|x|>", t.decode(plain));
        assertEquals("ab<|x|>", t.decode(new int[] {id("ab"), id("<|x|>")}));
    }

    @Test
    void defaultPreTokenizerIsLlamaCppsChainOfFour() {
        // [\p{P}$+<=>^~|]+ takes "!!"; the GPT-2 pattern splits "ab 12345"; \p{N}+ cuts " " from the digits;
        // [0-9]{3} cuts "123" from "45"
        assertEquals(List.of("ab", " ", "123", "45", "!!"), Tokenizer.PreTokenizer.DEFAULT.split("ab 12345!!"));
        // Llama 3: digits in threes, a space run kept off the next word but one space kept on it
        assertEquals(List.of("x", "123", "45", "   ", " y", "'S"), Tokenizer.PreTokenizer.LLAMA3.split("x12345    y'S"));
        assertEquals(List.of("1", "2", "3"), Tokenizer.PreTokenizer.QWEN2.split("123"));
    }

    @Test
    void bytesSplitAcrossTokensDecodeWholeAndInvalidOnesAsReplacementCharacters() throws IOException {
        Tokenizer t = load(small(List.of(), List.of(), "gpt-2"), "bytes");
        byte[] llama = "🦙".getBytes(StandardCharsets.UTF_8);
        int[] ids = t.encode("🦙");
        assertEquals(llama.length, ids.length);
        assertEquals("🦙", t.decode(ids));
        assertEquals("\uFFFD", t.decode(Arrays.copyOf(ids, 3)));
        assertEquals("\uFFFD\uFFFD", t.decode(new int[] {ids[1], ids[2]}));
    }

    @Test
    void unknownPreTokenizer() {
        assertEquals("tokenizer.ggml.pre must be one of default, gpt-2, llama-bpe, llama-v3, llama3, qwen2; "
                        + "tokenizer.ggml.pre=tekken",
                assertThrows(IllegalArgumentException.class,
                        () -> load(small(List.of(), List.of(), "tekken"), "pre")).getMessage());
    }

    @Test
    void mergeNamingAMissingToken() {
        assertEquals("tokenizer.ggml.merges must join tokens of the vocabulary into a token of the vocabulary; "
                        + "tokenizer.ggml.merges[1]=ab zz missing=zz",
                assertThrows(IllegalArgumentException.class,
                        () -> load(small(List.of("ab"), List.of("a b", "ab zz"), null), "merge")).getMessage());
        assertEquals("tokenizer.ggml.merges must join tokens of the vocabulary into a token of the vocabulary; "
                        + "tokenizer.ggml.merges[0]=a c missing=ac",
                assertThrows(IllegalArgumentException.class,
                        () -> load(small(List.of("ab"), List.of("a c"), null), "result")).getMessage());
        assertEquals("tokenizer.ggml.merges entries must be two tokens joined by a space; "
                        + "tokenizer.ggml.merges[0]=ab",
                assertThrows(IllegalArgumentException.class,
                        () -> load(small(List.of("ab"), List.of("ab"), null), "space")).getMessage());
    }

    @Test
    void vocabularyWithoutMergesOrByteTokensOrBos() {
        assertEquals("a byte-level BPE vocabulary must carry tokenizer.ggml.merges; tokenizer.ggml.merges=absent",
                assertThrows(IllegalArgumentException.class, () -> load(new GgufWriter()
                        .put("tokenizer.ggml.model", "gpt2").put("tokenizer.ggml.tokens", byteTokens()), "nomerges"))
                        .getMessage());
        assertEquals("a byte-level BPE vocabulary must have a token for every byte; byte=0xFF piece=\u00FF",
                assertThrows(IllegalArgumentException.class, () -> load(new GgufWriter()
                        .put("tokenizer.ggml.model", "gpt2")
                        .put("tokenizer.ggml.tokens", byteTokens().subList(0, 255))
                        .put("tokenizer.ggml.merges", List.of("a b")), "nobyte")).getMessage());
        assertEquals("tokenizer.ggml.bos_token_id must be a token id when BOS is added; "
                        + "tokenizer.ggml.bos_token_id=-1 tokens=256",
                assertThrows(IllegalArgumentException.class,
                        () -> load(small(List.of(), List.of(), "llama-bpe"), "nobos")).getMessage());
        assertEquals("tokenizer.ggml.token_type must have one entry per token; tokens=256 token_type=2",
                assertThrows(IllegalArgumentException.class, () -> load(small(List.of(), List.of(), null)
                        .put("tokenizer.ggml.token_type", List.of(1, 1)), "types")).getMessage());
    }

    @Test
    void specialPiecesNeedAByteLevelVocabulary() {
        Tokenizer sentencePiece = new Tokenizer(Tokenizer.Kind.SENTENCEPIECE, new String[] {"<unk>"}, new float[1],
                true, 1);
        assertEquals("special pieces are parsed for byte-level BPE vocabularies only; kind=SENTENCEPIECE",
                assertThrows(IllegalArgumentException.class, () -> sentencePiece.encodeWithSpecials("x"))
                        .getMessage());
    }
}
