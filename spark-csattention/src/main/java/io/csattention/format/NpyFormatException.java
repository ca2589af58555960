package io.csattention.format;

/** A {@code .npy} file that cannot be read as asked; the message names the file and the problem. */
public final class NpyFormatException extends java.io.IOException {
    public NpyFormatException(String message) {
        super(message);
    }
}
