package io.csattention.jobs;

import io.csattention.core.KeyValueCache;
import io.csattention.model.LlamaModel;
import io.csattention.model.ModelFiles;
import io.csattention.model.Tokenizer;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.nio.file.Path;

/** {@code --model FILE [--tokenizer FILE] [--kv-precision P]}: the model of a model command. */
final class ModelOptions {

    @Option(names = "--model", required = true, paramLabel = "FILE",
            description = "GGUF (architecture llama) or llama2.c .bin checkpoint")
    Path model;

    @Option(names = "--tokenizer", paramLabel = "FILE",
            description = "llama2.c tokenizer.bin (GGUF files carry their own vocabulary)")
    Path tokenizer;

    @Option(names = "--kv-precision", defaultValue = "f16", paramLabel = "f16|bf16|f32",
            description = "How the KV cache stores keys and values (float32 accumulation either way). "
                    + "Default: ${DEFAULT-VALUE}.")
    String kvPrecision;

    /** The {@code --kv-precision} chosen; one line naming the value otherwise. */
    KeyValueCache.Precision kvPrecision() {
        try {
            return KeyValueCache.Precision.parse(kvPrecision);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--kv-precision must be one of f16, bf16, f32; kv-precision="
                    + kvPrecision);
        }
    }

    LlamaModel load() throws IOException {
        KeyValueCache.Precision kv = kvPrecision();
        LlamaModel loaded = ModelFiles.load(model).withKvPrecision(kv);
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
