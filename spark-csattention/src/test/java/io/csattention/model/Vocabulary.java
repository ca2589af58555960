package io.csattention.model;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.zip.GZIPInputStream;

/**
 * A byte-level BPE vocabulary of the committed tokenizer fixtures (src/test/resources/tokenizer, README.md there):
 * header lines (pre, bos, eos), tokens with their GGUF types, merges highest priority first.
 */
record Vocabulary(Map<String, String> header, List<String> tokens, List<Integer> types, List<String> merges) {

    private static final Map<String, Vocabulary> READ = new ConcurrentHashMap<>();

    /** The fixture vocabulary of {@code family} (llama3, qwen3, gpt2), read once per JVM. */
    static Vocabulary read(String family) throws IOException {
        Vocabulary cached = READ.get(family);
        if (cached == null) {
            cached = readFile(family);
            READ.put(family, cached);
        }
        return cached;
    }

    private static Vocabulary readFile(String family) throws IOException {
        Map<String, String> header = new LinkedHashMap<>();
        List<String> tokens = new ArrayList<>();
        List<Integer> types = new ArrayList<>();
        List<String> merges = new ArrayList<>();
        try (BufferedReader in = gzipLines("/tokenizer/" + family + ".vocab.txt.gz")) {
            String line;
            while ((line = in.readLine()) != null && !line.startsWith("tokens ")) {
                if (!line.startsWith("#")) {
                    header.put(line.substring(0, line.indexOf(' ')), line.substring(line.indexOf(' ') + 1));
                }
            }
            int n = Integer.parseInt(line.substring("tokens ".length()));
            for (int i = 0; i < n; i++) {
                line = in.readLine();
                types.add(Integer.parseInt(line.substring(0, 1)));
                tokens.add(line.substring(2));
            }
            int m = Integer.parseInt(in.readLine().substring("merges ".length()));
            for (int i = 0; i < m; i++) {
                merges.add(in.readLine());
            }
        }
        return new Vocabulary(Map.copyOf(header), List.copyOf(tokens), List.copyOf(types), List.copyOf(merges));
    }

    static BufferedReader gzipLines(String resource) throws IOException {
        InputStream raw = Vocabulary.class.getResourceAsStream(resource);
        if (raw == null) {
            throw new IOException("test resource must exist; resource=" + resource);
        }
        return new BufferedReader(new InputStreamReader(new GZIPInputStream(raw), StandardCharsets.UTF_8));
    }

    /** The id of header entry {@code key} (bos, eos), or -1 when absent. */
    int headerId(String key) {
        String value = header.get(key);
        return value == null ? -1 : Integer.parseInt(value);
    }

    /**
     * The first {@code normal} tokens (in these tiktoken-derived vocabularies the 256 byte tokens, then the merge
     * results in rank order), followed by every control and user-defined token renumbered in order, and the merges
     * whose two sides and result are all kept: a smaller vocabulary that encodes any text, for model fixtures whose
     * embedding must stay small. Header ids are renumbered (dropped when their token is).
     */
    Vocabulary truncated(int normal) {
        Map<Integer, Integer> renumbered = new HashMap<>();
        List<String> keptTokens = new ArrayList<>();
        List<Integer> keptTypes = new ArrayList<>();
        for (int id = 0; id < tokens.size(); id++) {
            if (id < normal || types.get(id) != Tokenizer.NORMAL) {
                renumbered.put(id, keptTokens.size());
                keptTokens.add(tokens.get(id));
                keptTypes.add(types.get(id));
            }
        }
        Set<String> pieces = new HashSet<>(keptTokens);
        List<String> keptMerges = new ArrayList<>();
        for (String merge : merges) {
            int space = merge.indexOf(' ');
            String left = merge.substring(0, space);
            String right = merge.substring(space + 1);
            if (pieces.contains(left) && pieces.contains(right) && pieces.contains(left + right)) {
                keptMerges.add(merge);
            }
        }
        Map<String, String> keptHeader = new LinkedHashMap<>();
        header.forEach((key, value) -> {
            if (key.equals("bos") || key.equals("eos")) {
                Integer id = renumbered.get(Integer.parseInt(value));
                if (id != null) {
                    keptHeader.put(key, String.valueOf(id));
                }
            } else {
                keptHeader.put(key, value);
            }
        });
        return new Vocabulary(keptHeader, keptTokens, keptTypes, keptMerges);
    }

    /** The id of {@code piece}; fails when the vocabulary lacks it. */
    int id(String piece) {
        int id = tokens.indexOf(piece);
        if (id < 0) {
            throw new IllegalArgumentException("vocabulary must hold the piece; piece=" + piece);
        }
        return id;
    }
}
