package io.csattention.jobs;

import io.csattention.model.LlamaModel;
import io.csattention.model.ModelFiles;
import io.csattention.model.Tokenizer;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.nio.file.Path;

/** {@code --model FILE [--tokenizer FILE]}: the model of a model command. */
final class ModelOptions {

    @Option(names = "--model", required = true, paramLabel = "FILE",
            description = "GGUF (architecture llama) or llama2.c .bin checkpoint")
    Path model;

    @Option(names = "--tokenizer", paramLabel = "FILE",
            description = "llama2.c tokenizer.bin (GGUF files carry their own vocabulary)")
    Path tokenizer;

    LlamaModel load() throws IOException {
        LlamaModel loaded = ModelFiles.load(model);
        if (tokenizer != null) {
            loaded = loaded.withTokenizer(Tokenizer.readLlama2c(tokenizer, loaded.config().vocabSize()));
        }
        return loaded;
    }

    /** Parses {@code "1 2 3"} (spaces or commas) into token ids checked against the vocabulary. */
    static int[] parseTokens(String text, LlamaModel model) {
        String trimmed = text.trim();
        if (trimmed.isEmpty()) {
            throw new IllegalArgumentException("prompt-tokens must hold at least one token id; prompt-tokens=''");
        }
        String[] parts = trimmed.split("[\\s,]+");
        int[] tokens = new int[parts.length];
        for (int i = 0; i < parts.length; i++) {
            try {
                tokens[i] = Integer.parseInt(parts[i]);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("prompt-tokens must be integers; token=" + parts[i]);
            }
            model.checkToken(tokens[i]);
        }
        return tokens;
    }
}
