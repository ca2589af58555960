package io.csattention.model;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;

/** Opens a model file by its content: GGUF when it starts with the GGUF magic, a llama2.c checkpoint otherwise. */
public final class ModelFiles {

    private ModelFiles() {
    }

    public static LlamaModel load(Path file) throws IOException {
        if (!Files.exists(file)) {
            throw new IOException("model file must exist; model=" + file);
        }
        if (!Files.isRegularFile(file)) {
            throw new IOException("model file must be a regular file; model=" + file);
        }
        byte[] head;
        try (InputStream in = Files.newInputStream(file)) {
            head = in.readNBytes(Llama2cCheckpoint.HEADER_BYTES);
        }
        if (head.length >= 4 && GgufFile.hasMagic(ByteBuffer.wrap(head))) {
            return GgufModel.load(file);
        }
        if (head.length < Llama2cCheckpoint.HEADER_BYTES) {
            throw new IOException("model file must be GGUF or a llama2.c checkpoint; model=" + file + " size="
                    + head.length);
        }
        return Llama2cCheckpoint.load(file);
    }
}
