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
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Text to token ids and back for the two vocabularies Llama-family files carry:
 * <ul>
 *   <li>SentencePiece-style (llama2.c {@code tokenizer.bin}, GGUF {@code tokenizer.ggml.model = llama}): pieces with
 *   scores; encoding starts from one piece per character (bytes as {@code <0xXX>} pieces where a character has no
 *   piece) and repeatedly merges the adjacent pair whose merged piece scores highest, as llama2.c's {@code encode}
 *   does. A leading space is added, as SentencePiece's dummy prefix; GGUF vocabularies write spaces as U+2581.</li>
 *   <li>Byte-level BPE (GGUF {@code tokenizer.ggml.model = gpt2}: Llama 3, Qwen2, GPT-2), built by
 *   {@link #byteLevelBpe}. Encoding splits the text with the pre-tokenizer that {@code tokenizer.ggml.pre} names (the
 *   split patterns of llama.cpp's {@code llama-vocab.cpp}: {@code llama-bpe} for Llama 3, digits in groups of up to
 *   three; {@code qwen2}, digits one by one; {@code gpt-2}; {@code default}, llama.cpp's chain of four), spells each
 *   piece's UTF-8 bytes with GPT-2's byte-to-character map, and merges adjacent symbols in the order of
 *   {@code tokenizer.ggml.merges} (rank = position; equal ranks left to right). Llama 3's pre-tokenizer takes a piece
 *   that is itself a token whole, without merging (Hugging Face's {@code ignore_merges}, as llama.cpp does). Control
 *   and user-defined tokens ({@code tokenizer.ggml.token_type} 3 and 4) are never produced from plain text:
 *   {@link #encode} spells {@code <|eot_id|>} as ordinary text, {@link #encodeWithSpecials} turns such pieces into
 *   their ids. BOS is added when {@code tokenizer.ggml.add_bos_token} says so, else by the pre-tokenizer's default
 *   (Llama 3 adds it, the others do not), as llama.cpp does. Qwen's NFC normalization is not applied (llama.cpp does
 *   not apply it either). Decoding concatenates the tokens' bytes and decodes UTF-8 once, so characters split across
 *   tokens come back whole and invalid sequences become U+FFFD, as the Hugging Face and JavaScript decoders do;
 *   control and user-defined tokens decode to their text, and a leading BOS that the vocabulary adds is dropped.</li>
 * </ul>
 */
public final class Tokenizer {

    /** How the vocabulary spells text. */
    public enum Kind { SENTENCEPIECE, BYTE_LEVEL_BPE }

    /** GGUF token types ({@code tokenizer.ggml.token_type}), numbered as llama.cpp and the gguf package do. */
    public static final int NORMAL = 1;
    public static final int CONTROL = 3;
    public static final int USER_DEFINED = 4;

    private static final char SPACE_MARK = '\u2581';

    private final Kind kind;
    private final String[] pieces;
    private final float[] scores;
    private final boolean spaceMarked;
    /** SentencePiece: the BOS id; byte-level BPE: the BOS id when the vocabulary adds it, else -1. */
    private final int bos;
    private final Map<String, Integer> ids = new HashMap<>();
    /** Byte-level BPE only; null for SentencePiece. */
    private final ByteLevelBpe bpe;

    /** A SentencePiece-style vocabulary; byte-level BPE vocabularies come from {@link #byteLevelBpe}. */
    public Tokenizer(Kind kind, String[] pieces, float[] scores, boolean spaceMarked, int bos) {
        this(kind, pieces, scores, spaceMarked, bos, null);
        if (kind != Kind.SENTENCEPIECE) {
            throw new IllegalArgumentException("a byte-level BPE vocabulary needs its merges and pre-tokenizer "
                    + "(Tokenizer.byteLevelBpe); kind=" + kind);
        }
    }

    private Tokenizer(Kind kind, String[] pieces, float[] scores, boolean spaceMarked, int bos, ByteLevelBpe bpe) {
        this.kind = kind;
        this.pieces = pieces;
        this.scores = scores;
        this.spaceMarked = spaceMarked;
        this.bos = bos;
        this.bpe = bpe;
        if (bpe == null) {
            for (int i = 0; i < pieces.length; i++) {
                ids.putIfAbsent(pieces[i], i);
            }
        }
    }

    /**
     * A byte-level BPE vocabulary as GGUF carries it.
     *
     * @param pieces the tokens ({@code tokenizer.ggml.tokens}), in GPT-2's byte-to-character spelling
     * @param types  {@code tokenizer.ggml.token_type} per token, or null when the file has none (all normal)
     * @param merges {@code tokenizer.ggml.merges}: "left right", highest priority first
     * @param pre    {@code tokenizer.ggml.pre}, or null for {@code default} (as llama.cpp reads a file without it)
     * @param bos    {@code tokenizer.ggml.bos_token_id}, or -1
     * @param addBos {@code tokenizer.ggml.add_bos_token}, or null for the pre-tokenizer's default
     */
    public static Tokenizer byteLevelBpe(String[] pieces, int[] types, List<String> merges, String pre, int bos,
            Boolean addBos) {
        PreTokenizer preTokenizer = PreTokenizer.named(pre == null ? "default" : pre);
        if (types != null && types.length != pieces.length) {
            throw new IllegalArgumentException("tokenizer.ggml.token_type must have one entry per token; tokens="
                    + pieces.length + " token_type=" + types.length);
        }
        if (merges == null) {
            throw new IllegalArgumentException("a byte-level BPE vocabulary must carry tokenizer.ggml.merges; "
                    + "tokenizer.ggml.merges=absent");
        }
        boolean adds = addBos != null ? addBos : preTokenizer.addsBos;
        if (adds && (bos < 0 || bos >= pieces.length)) {
            throw new IllegalArgumentException("tokenizer.ggml.bos_token_id must be a token id when BOS is added; "
                    + "tokenizer.ggml.bos_token_id=" + bos + " tokens=" + pieces.length);
        }
        int[] typeOf = new int[pieces.length];
        java.util.Arrays.fill(typeOf, NORMAL);
        if (types != null) {
            System.arraycopy(types, 0, typeOf, 0, types.length);
        }
        return new Tokenizer(Kind.BYTE_LEVEL_BPE, pieces, new float[0], false, adds ? bos : -1,
                new ByteLevelBpe(pieces, typeOf, merges, preTokenizer));
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

    /** Whether the vocabulary holds {@code piece} as a token of its own (as stored: SentencePiece's ▁ for space). */
    boolean hasPiece(String piece) {
        return Arrays.asList(pieces).contains(piece);
    }

    /**
     * The token ids of {@code text}, starting with BOS (SentencePiece always; byte-level BPE when the vocabulary adds
     * it). Text that spells a control or user-defined piece is encoded as plain text.
     */
    public int[] encode(String text) {
        if (kind == Kind.BYTE_LEVEL_BPE) {
            return bpe.encode(text, bos, false);
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

    /**
     * Like {@link #encode}, except that control and user-defined pieces written in the text ({@code <|eot_id|>},
     * {@code <|im_start|>}, {@code <think>}) become their ids, as chat templates need. Byte-level BPE only.
     */
    public int[] encodeWithSpecials(String text) {
        if (kind != Kind.BYTE_LEVEL_BPE) {
            throw new IllegalArgumentException("special pieces are parsed for byte-level BPE vocabularies only; "
                    + "kind=" + kind);
        }
        return bpe.encode(text, bos, true);
    }

    /**
     * The text of {@code tokens}; ids outside the vocabulary are skipped. SentencePiece: BOS and the space
     * SentencePiece adds after it are dropped. Byte-level BPE: the tokens' bytes decoded as UTF-8 in one go, a leading
     * BOS that the vocabulary adds dropped.
     */
    public String decode(int[] tokens) {
        if (kind == Kind.BYTE_LEVEL_BPE) {
            return bpe.decode(tokens, bos);
        }
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        int previous = -1;
        for (int token : tokens) {
            if (token < 0 || token >= pieces.length) {
                continue;
            }
            String piece = pieces[token];
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

    /**
     * The split patterns of {@code tokenizer.ggml.pre}, as llama.cpp's {@code llama-vocab.cpp} lists them (Hugging
     * Face's {@code (?i:'s|...)} written out as {@code '[sS]|...}). Each pattern of a chain splits every piece left by
     * the one before into its matches and the text between them. {@code \s} is Unicode White_Space
     * (UNICODE_CHARACTER_CLASS), as in Rust's regex and llama.cpp, not Java's ASCII default.
     */
    enum PreTokenizer {
        DEFAULT(List.of("default"), false, false,
                "[\\p{P}\\$\\+<=>\\^~\\|]+",
                "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
                "\\p{N}+",
                "[0-9][0-9][0-9]"),
        GPT2(List.of("gpt-2"), false, false,
                "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"),
        LLAMA3(List.of("llama-bpe", "llama3", "llama-v3"), true, true,
                "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
                        + "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"),
        QWEN2(List.of("qwen2"), false, false,
                "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
                        + "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+");

        final List<String> names;
        /** A piece that is itself a token is taken whole (Hugging Face's ignore_merges). */
        final boolean ignoresMerges;
        final boolean addsBos;
        final List<Pattern> patterns;

        PreTokenizer(List<String> names, boolean ignoresMerges, boolean addsBos, String... patterns) {
            this.names = names;
            this.ignoresMerges = ignoresMerges;
            this.addsBos = addsBos;
            this.patterns = java.util.Arrays.stream(patterns)
                    .map(p -> Pattern.compile(p, Pattern.UNICODE_CHARACTER_CLASS)).toList();
        }

        static PreTokenizer named(String name) {
            for (PreTokenizer p : values()) {
                if (p.names.contains(name)) {
                    return p;
                }
            }
            throw new IllegalArgumentException("tokenizer.ggml.pre must be one of " + String.join(", ", allNames())
                    + "; tokenizer.ggml.pre=" + name);
        }

        static List<String> allNames() {
            return java.util.Arrays.stream(values()).flatMap(p -> p.names.stream()).sorted().toList();
        }

        List<String> split(String text) {
            List<String> parts = List.of(text);
            for (Pattern pattern : patterns) {
                List<String> next = new ArrayList<>();
                for (String part : parts) {
                    Matcher m = pattern.matcher(part);
                    int at = 0;
                    while (m.find()) {
                        if (m.start() > at) {
                            next.add(part.substring(at, m.start()));
                        }
                        if (m.end() > m.start()) {
                            next.add(m.group());
                        }
                        at = m.end();
                    }
                    if (at < part.length()) {
                        next.add(part.substring(at));
                    }
                }
                parts = next;
            }
            return parts;
        }
    }

    /** GPT-2's reversible map between bytes and printable characters. */
    static final class ByteLevel {
        private static final int[] BYTE_OF_CHAR = new int[512];
        private static final char[] CHAR_OF_BYTE = new char[256];

        static {
            java.util.Arrays.fill(BYTE_OF_CHAR, -1);
            int extra = 0;
            for (int b = 0; b < 256; b++) {
                boolean printable = b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE && b <= 0xFF;
                int ch = printable ? b : 256 + extra++;
                BYTE_OF_CHAR[ch] = b;
                CHAR_OF_BYTE[b] = (char) ch;
            }
        }

        /** The byte {@code ch} spells, or -1 when it spells none. */
        static int byteOf(char ch) {
            return ch < BYTE_OF_CHAR.length ? BYTE_OF_CHAR[ch] : -1;
        }

        static char charOf(int b) {
            return CHAR_OF_BYTE[b];
        }

        static String spell(byte[] utf8) {
            char[] chars = new char[utf8.length];
            for (int i = 0; i < utf8.length; i++) {
                chars[i] = CHAR_OF_BYTE[utf8[i] & 0xFF];
            }
            return new String(chars);
        }
    }

    /** The byte-level BPE state: merge ranks, byte tokens, the special pieces and the pre-tokenizer. */
    private static final class ByteLevelBpe {
        private final String[] pieces;
        private final int[] types;
        private final PreTokenizer pre;
        /** Ids of the tokens plain text may produce: every token but control and user-defined ones. */
        private final Map<String, Integer> textIds = new HashMap<>();
        /** (left id << 32 | right id) to (rank << 32 | merged id). */
        private final PairTable merges;
        private final int[] byteTokens = new int[256];
        /** Control and user-defined pieces by their first character, longest first. */
        private final Map<Character, List<String>> specials = new HashMap<>();
        private final Map<String, Integer> specialIds = new HashMap<>();

        ByteLevelBpe(String[] pieces, int[] types, List<String> mergeList, PreTokenizer pre) {
            this.pieces = pieces;
            this.types = types;
            this.pre = pre;
            for (int i = 0; i < pieces.length; i++) {
                if (types[i] == CONTROL || types[i] == USER_DEFINED) {
                    if (!pieces[i].isEmpty() && specialIds.putIfAbsent(pieces[i], i) == null) {
                        specials.computeIfAbsent(pieces[i].charAt(0), c -> new ArrayList<>()).add(pieces[i]);
                    }
                } else {
                    textIds.putIfAbsent(pieces[i], i);
                }
            }
            for (List<String> sameStart : specials.values()) {
                sameStart.sort(java.util.Comparator.comparingInt(String::length).reversed());
            }
            for (int b = 0; b < 256; b++) {
                Integer id = textIds.get(String.valueOf(ByteLevel.charOf(b)));
                if (id == null) {
                    throw new IllegalArgumentException(String.format(
                            "a byte-level BPE vocabulary must have a token for every byte; byte=0x%02X piece=%s",
                            b, ByteLevel.charOf(b)));
                }
                byteTokens[b] = id;
            }
            merges = new PairTable(mergeList.size());
            for (int rank = 0; rank < mergeList.size(); rank++) {
                String merge = mergeList.get(rank);
                int space = merge.indexOf(' ', 1);
                if (space < 0 || space == merge.length() - 1) {
                    throw new IllegalArgumentException("tokenizer.ggml.merges entries must be two tokens joined by "
                            + "a space; tokenizer.ggml.merges[" + rank + "]=" + merge);
                }
                String left = merge.substring(0, space);
                String right = merge.substring(space + 1);
                Integer l = textIds.get(left);
                Integer r = textIds.get(right);
                Integer merged = textIds.get(left + right);
                if (l == null || r == null || merged == null) {
                    String missing = l == null ? left : r == null ? right : left + right;
                    throw new IllegalArgumentException("tokenizer.ggml.merges must join tokens of the vocabulary "
                            + "into a token of the vocabulary; tokenizer.ggml.merges[" + rank + "]=" + merge
                            + " missing=" + missing);
                }
                merges.putIfAbsent((long) l << 32 | r, (long) rank << 32 | merged);
            }
        }

        int[] encode(String text, int bos, boolean parseSpecials) {
            IntList out = new IntList();
            if (bos >= 0) {
                out.add(bos);
            }
            if (!parseSpecials || specials.isEmpty()) {
                encodeText(text, out);
                return out.toArray();
            }
            // leftmost special piece first, the longest where several start at the same place
            int plainFrom = 0;
            for (int at = 0; at < text.length(); at++) {
                List<String> candidates = specials.get(text.charAt(at));
                if (candidates == null) {
                    continue;
                }
                for (String special : candidates) {
                    if (text.startsWith(special, at)) {
                        encodeText(text.substring(plainFrom, at), out);
                        out.add(specialIds.get(special));
                        plainFrom = at + special.length();
                        at = plainFrom - 1;
                        break;
                    }
                }
            }
            encodeText(text.substring(plainFrom), out);
            return out.toArray();
        }

        private void encodeText(String text, IntList out) {
            if (text.isEmpty()) {
                return;
            }
            for (String part : pre.split(text)) {
                byte[] utf8 = part.getBytes(StandardCharsets.UTF_8);
                if (pre.ignoresMerges) {
                    Integer whole = textIds.get(ByteLevel.spell(utf8));
                    if (whole != null) {
                        out.add(whole);
                        continue;
                    }
                }
                merge(utf8, out);
            }
        }

        /**
         * Merges the symbols of one piece, lowest rank first and equal ranks left to right (a heap of rank and left
         * position; entries whose pair has changed since they were queued are skipped).
         */
        private void merge(byte[] utf8, IntList out) {
            int n = utf8.length;
            int[] symbol = new int[n];
            int[] next = new int[n];
            int[] prev = new int[n];
            for (int i = 0; i < n; i++) {
                symbol[i] = byteTokens[utf8[i] & 0xFF];
                next[i] = i + 1 < n ? i + 1 : -1;
                prev[i] = i - 1;
            }
            LongHeap queue = new LongHeap();
            for (int i = 0; i + 1 < n; i++) {
                offer(queue, symbol, i, i + 1);
            }
            while (!queue.isEmpty()) {
                long entry = queue.poll();
                int left = (int) entry;
                int rank = (int) (entry >>> 32);
                int right = next[left];
                if (symbol[left] < 0 || right < 0) {
                    continue;
                }
                long found = merges.get((long) symbol[left] << 32 | symbol[right]);
                if (found < 0 || (int) (found >>> 32) != rank) {
                    continue;
                }
                symbol[left] = (int) found;
                symbol[right] = -1;
                next[left] = next[right];
                if (next[right] >= 0) {
                    prev[next[right]] = left;
                }
                if (prev[left] >= 0) {
                    offer(queue, symbol, prev[left], left);
                }
                if (next[left] >= 0) {
                    offer(queue, symbol, left, next[left]);
                }
            }
            for (int i = 0; i >= 0; i = next[i]) {
                out.add(symbol[i]);
            }
        }

        private void offer(LongHeap queue, int[] symbol, int left, int right) {
            long found = merges.get((long) symbol[left] << 32 | symbol[right]);
            if (found >= 0) {
                queue.add((found >>> 32) << 32 | left);
            }
        }

        String decode(int[] tokens, int bos) {
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            for (int i = 0; i < tokens.length; i++) {
                int token = tokens[i];
                if (token < 0 || token >= pieces.length || i == 0 && token == bos) {
                    continue;
                }
                String piece = pieces[token];
                if (types[token] == CONTROL || types[token] == USER_DEFINED) {
                    bytes.writeBytes(piece.getBytes(StandardCharsets.UTF_8));
                    continue;
                }
                for (int c = 0; c < piece.length(); c++) {
                    int b = ByteLevel.byteOf(piece.charAt(c));
                    if (b >= 0) {
                        bytes.write(b);
                    } else {
                        // a character outside GPT-2's map stands for itself
                        int cp = piece.codePointAt(c);
                        bytes.writeBytes(new String(Character.toChars(cp)).getBytes(StandardCharsets.UTF_8));
                        c += Character.charCount(cp) - 1;
                    }
                }
            }
            return bytes.toString(StandardCharsets.UTF_8);
        }
    }

    /** An open-addressing map from non-negative long keys to non-negative long values; -1 for an absent key. */
    private static final class PairTable {
        private final long[] keys;
        private final long[] values;
        private final int shift;

        PairTable(int expected) {
            int bits = Math.max(4, 64 - Long.numberOfLeadingZeros(expected * 2L));
            keys = new long[1 << bits];
            values = new long[1 << bits];
            java.util.Arrays.fill(keys, -1);
            shift = 64 - bits;
        }

        private int slot(long key) {
            int mask = keys.length - 1;
            int i = (int) ((key * 0x9E3779B97F4A7C15L) >>> shift);
            while (keys[i] != -1 && keys[i] != key) {
                i = (i + 1) & mask;
            }
            return i;
        }

        void putIfAbsent(long key, long value) {
            int i = slot(key);
            if (keys[i] == -1) {
                keys[i] = key;
                values[i] = value;
            }
        }

        long get(long key) {
            int i = slot(key);
            return keys[i] == -1 ? -1 : values[i];
        }
    }

    /** A binary min-heap of longs. */
    private static final class LongHeap {
        private long[] heap = new long[16];
        private int size;

        boolean isEmpty() {
            return size == 0;
        }

        void add(long v) {
            if (size == heap.length) {
                heap = java.util.Arrays.copyOf(heap, size * 2);
            }
            int i = size++;
            while (i > 0 && heap[(i - 1) / 2] > v) {
                heap[i] = heap[(i - 1) / 2];
                i = (i - 1) / 2;
            }
            heap[i] = v;
        }

        long poll() {
            long top = heap[0];
            long last = heap[--size];
            int i = 0;
            while (2 * i + 1 < size) {
                int child = 2 * i + 1;
                if (child + 1 < size && heap[child + 1] < heap[child]) {
                    child++;
                }
                if (heap[child] >= last) {
                    break;
                }
                heap[i] = heap[child];
                i = child;
            }
            heap[i] = last;
            return top;
        }
    }

    /** A growable int array. */
    private static final class IntList {
        private int[] values = new int[16];
        private int size;

        void add(int v) {
            if (size == values.length) {
                values = java.util.Arrays.copyOf(values, size * 2);
            }
            values[size++] = v;
        }

        int[] toArray() {
            return java.util.Arrays.copyOf(values, size);
        }
    }
}
