package io.csattention.jobs;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Comparator;
import java.util.stream.Stream;

/**
 * The output directory of a local command ({@code --out DIR} of eval, bench, dump-qkv): checked before any work
 * (new or empty, under a writable directory), written beside its place and moved there complete, so that a failed
 * run leaves nothing behind and a rerun is not refused.
 */
final class OutputDir {

    /** What a command writes into the (staging) directory. */
    interface Contents {
        void writeTo(Path dir) throws IOException;
    }

    private OutputDir() {
    }

    /**
     * Fails with one line when {@code out} exists and is not an empty directory, or when the directory it would be
     * created in is not a writable directory.
     */
    static void check(Path out) {
        if (out == null) {
            return;
        }
        Path absolute = out.toAbsolutePath().normalize();
        if (Files.exists(absolute)) {
            try (Stream<Path> entries = Files.isDirectory(absolute) ? Files.list(absolute) : null) {
                if (entries == null || entries.findAny().isPresent()) {
                    throw new IllegalArgumentException("--out must be a new or empty directory; --out=" + out);
                }
            } catch (IOException e) {
                throw new IllegalArgumentException("--out is not readable; --out=" + out + " (" + e.getMessage()
                        + ")");
            }
        }
        Path ancestor = absolute.getParent();
        while (ancestor != null && !Files.exists(ancestor)) {
            ancestor = ancestor.getParent();
        }
        if (ancestor == null || !Files.isDirectory(ancestor) || !Files.isWritable(ancestor)) {
            throw new IllegalArgumentException("--out must be in a writable directory (" + ancestor + " is not); "
                    + "--out=" + out);
        }
    }

    /** Writes {@code contents} into a hidden sibling of {@code out}, then moves it to {@code out} complete. */
    static void write(Path out, Contents contents) throws IOException {
        Path absolute = out.toAbsolutePath();
        Path parent = absolute.getParent();
        Files.createDirectories(parent);
        Path staging = Files.createTempDirectory(parent, "." + absolute.getFileName() + ".partial-");
        try {
            contents.writeTo(staging);
            if (Files.isDirectory(absolute)) {
                Files.delete(absolute);
            }
            Files.move(staging, absolute, StandardCopyOption.ATOMIC_MOVE);
        } finally {
            if (Files.exists(staging)) {
                deleteTree(staging);
            }
        }
    }

    private static void deleteTree(Path root) throws IOException {
        try (Stream<Path> walk = Files.walk(root)) {
            for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }
}
