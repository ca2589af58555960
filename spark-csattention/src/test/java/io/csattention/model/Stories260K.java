package io.csattention.model;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.nio.file.Path;

/** The bundled llama2.c checkpoint (see src/test/resources/models/README.md), loaded once per test JVM. */
final class Stories260K {

    static final int BOS = 1;

    private static LlamaModel model;

    private Stories260K() {
    }

    static Path path() {
        try {
            return Path.of(Stories260K.class.getResource("/models/stories260K.bin").toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    static synchronized LlamaModel model() {
        if (model == null) {
            try {
                model = ModelFiles.load(path());
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return model;
    }

    /** Greedy decoding of {@code steps} tokens after {@code prompt} with exact attention. */
    static int[] greedy(LlamaModel m, int[] prompt, int steps) {
        Session session = m.newSession();
        float[] logits = session.prefill(prompt);
        int[] out = new int[steps];
        for (int i = 0; i < steps; i++) {
            out[i] = Sampler.argmax(logits);
            logits = session.decode(out[i]);
        }
        return out;
    }
}
