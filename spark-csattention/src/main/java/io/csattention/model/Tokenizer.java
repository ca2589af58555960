package io.csattention.model;

import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Text to token ids and back for the two vocabularies Llama-family files carry:
 * <ul>
 *   <li>SentencePiece-style (llama2.c {@code tokenizer.bin}, GGUF {@code tokenizer.ggml.model = llama}): pieces with
 *   scores; encoding starts from one piece per character (bytes as {@code <0xXX>} pieces where a character has no
 *   piece) and repeatedly merges the adjacent pair whose merged piece scores highest, as llama2.c's {@code encode}
 *   does. A leading space is added, as SentencePiece's dummy prefix; GGUF vocabularies write spaces as U+2581.</li>
 *   <li>Byte-level BPE (GGUF {@code tokenizer.ggml.model = gpt2}): decoding only; text prompts need token ids.</li>
 * </ul>
 */
public final class Tokenizer {

    /** How the vocabulary spells text. */
    public enum Kind { SENTENCEPIECE, BYTE_LEVEL_BPE }

    private static final char SPACE_MARK = '\u2581';

    private final Kind kind;
    private final String[] pieces;
    private final float[] scores;
    private final boolean spaceMarked;
    private final int bos;
    private final Map<String, Integer> ids = new HashMap<>();

    public Tokenizer(Kind kind, String[] pieces, float[] scores, boolean spaceMarked, int bos) {
        this.kind = kind;
        this.pieces = pieces;
        this.scores = scores;
        this.spaceMarked = spaceMarked;
        this.bos = bos;
        for (int i = 0; i < pieces.length; i++) {
            ids.putIfAbsent(pieces[i], i);
        }
    }

    /**
     * Reads llama2.c's {@code tokenizer.bin}: int32 max piece length, then per token a float32 score, an int32 byte
     * length and the UTF-8 bytes (little-endian).
     */
    public static Tokenizer readLlama2c(Path file, int vocabSize) throws IOException {
        if (!Files.isRegularFile(file)) {
            throw new IOException("tokenizer file must exist; tokenizer=" + file);
        }
        int i = 0;
        try (InputStream in = Files.newInputStream(file)) {
            DataInputStream data = new DataInputStream(new java.io.BufferedInputStream(in));
            readIntLe(data);
            String[] pieces = new String[vocabSize];
            float[] scores = new float[vocabSize];
            for (; i < vocabSize; i++) {
                scores[i] = Float.intBitsToFloat(readIntLe(data));
                int length = readIntLe(data);
                if (length < 0 || length > 1 << 16) {
                    throw new IOException("tokenizer piece length must be in [0, 65536]; tokenizer=" + file
                            + " piece=" + i + " length=" + length);
                }
                byte[] bytes = data.readNBytes(length);
                if (bytes.length < length) {
                    throw new java.io.EOFException();
                }
                pieces[i] = new String(bytes, StandardCharsets.UTF_8);
            }
            return new Tokenizer(Kind.SENTENCEPIECE, pieces, scores, false, 1);
        } catch (java.io.EOFException e) {
            throw new IOException("tokenizer file is truncated at piece " + i + "; tokenizer=" + file, e);
        }
    }

    private static int readIntLe(DataInputStream in) throws IOException {
        byte[] b = in.readNBytes(4);
        if (b.length < 4) {
            throw new java.io.EOFException();
        }
        return ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).getInt();
    }

    public Kind kind() {
        return kind;
    }

    public int vocabSize() {
        return pieces.length;
    }

    /** The token ids of {@code text}, starting with BOS. */
    public int[] encode(String text) {
        if (kind != Kind.SENTENCEPIECE) {
            throw new IllegalArgumentException("text prompts need a SentencePiece vocabulary (pass --prompt-tokens); "
                    + "tokenizer.ggml.model=gpt2");
        }
        List<Integer> tokens = new ArrayList<>();
        if (!text.isEmpty()) {
            String spaced = " " + text;
            if (spaceMarked) {
                spaced = spaced.replace(' ', SPACE_MARK);
            }
            spaced.codePoints().forEach(cp -> {
                String piece = new String(Character.toChars(cp));
                Integer id = ids.get(piece);
                if (id != null) {
                    tokens.add(id);
                    return;
                }
                for (byte b : piece.getBytes(StandardCharsets.UTF_8)) {
                    Integer byteId = ids.get(String.format("<0x%02X>", b & 0xFF));
                    tokens.add(byteId != null ? byteId : (b & 0xFF) + 3);
                }
            });
        }
        while (true) {
            float best = Float.NEGATIVE_INFINITY;
            int bestId = -1;
            int bestAt = -1;
            for (int i = 0; i + 1 < tokens.size(); i++) {
                Integer id = ids.get(pieces[tokens.get(i)] + pieces[tokens.get(i + 1)]);
                if (id != null && scores[id] > best) {
                    best = scores[id];
                    bestId = id;
                    bestAt = i;
                }
            }
            if (bestId < 0) {
                break;
            }
            tokens.set(bestAt, bestId);
            tokens.remove(bestAt + 1);
        }
        int[] out = new int[tokens.size() + 1];
        out[0] = bos;
        for (int i = 0; i < tokens.size(); i++) {
            out[i + 1] = tokens.get(i);
        }
        return out;
    }

    /** The text of {@code tokens} (a leading BOS and the space SentencePiece adds after it are dropped). */
    public String decode(int[] tokens) {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        int previous = -1;
        for (int token : tokens) {
            if (token < 0 || token >= pieces.length) {
                continue;
            }
            String piece = pieces[token];
            if (kind == Kind.BYTE_LEVEL_BPE) {
                for (int i = 0; i < piece.length(); i++) {
                    bytes.write(ByteLevel.byteOf(piece.charAt(i)));
                }
                continue;
            }
            if (spaceMarked) {
                piece = piece.replace(SPACE_MARK, ' ');
            }
            if ((previous == bos || previous == -1) && piece.startsWith(" ")) {
                piece = piece.substring(1);
            }
            previous = token;
            if (token == bos) {
                continue;
            }
            if (piece.length() == 6 && piece.startsWith("<0x") && piece.endsWith(">")) {
                try {
                    bytes.write(Integer.parseInt(piece.substring(3, 5), 16));
                    continue;
                } catch (NumberFormatException notAByte) {
                    // an ordinary piece that looks like one
                }
            }
            bytes.writeBytes(piece.getBytes(StandardCharsets.UTF_8));
        }
        return bytes.toString(StandardCharsets.UTF_8);
    }

    /** GPT-2's reversible map between bytes and printable characters. */
    private static final class ByteLevel {
        private static final int[] BYTE_OF_CHAR = new int[512];

        static {
            java.util.Arrays.fill(BYTE_OF_CHAR, -1);
            int extra = 0;
            for (int b = 0; b < 256; b++) {
                boolean printable = b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE && b <= 0xFF;
                int ch = printable ? b : 256 + extra++;
                BYTE_OF_CHAR[ch] = b;
            }
        }

        static int byteOf(char ch) {
            return ch < BYTE_OF_CHAR.length && BYTE_OF_CHAR[ch] >= 0 ? BYTE_OF_CHAR[ch] : '?';
        }
    }
}
