package io.csattention.format;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;

/**
 * A seeded mutation fuzz loop for the file parsers, run as ordinary JUnit tests (Jazzer is not in the build): each
 * iteration takes a seed input, applies one to four mutations (bit flips, interesting bytes, int32 and int64 values,
 * truncation, extension, insertion, deletion, copied ranges, dictionary tokens) and hands the result to the parser.
 * An outcome is clean when the parser accepts the input (and the target's own check of what it accepted passes) or
 * throws one of the target's typed exceptions with a one-line message; anything else (another exception type, an
 * Error such as OutOfMemoryError or StackOverflowError, a message over several lines) is unclean, and the input is
 * saved under {@code target/fuzz-failures/}.
 *
 * <p>System properties: {@value #ITERATIONS} (default: the target's CI count), {@value #SEED} (default 20251202),
 * {@value #SECONDS} (a time cap; default 5 in CI, none when the iterations are given).
 */
public final class FuzzLoop {

    public static final String ITERATIONS = "csattention.fuzz.iterations";
    public static final String SEED = "csattention.fuzz.seed";
    public static final String SECONDS = "csattention.fuzz.seconds";
    public static final long DEFAULT_SEED = 20251202L;

    private static final int[] INTS = {0, -1, 1, 2, 7, 8, 255, 256, 65535, 65536, Integer.MAX_VALUE,
        Integer.MIN_VALUE, Integer.MAX_VALUE - 16, 67_108_863, 1 << 30, -32, 31, 33, 1 << 24};
    private static final long[] LONGS = {0, -1, 1, 32, 1L << 32, (1L << 32) + 1, 1L << 40, Long.MAX_VALUE,
        Long.MIN_VALUE, -32, 1L << 62, 12, 13};

    /** What the parser does with one input; a typed failure is thrown, anything else it finds wrong is returned. */
    @FunctionalInterface
    public interface Target {
        /** Parses {@code input}; returns null when what was accepted is fine, else why it is not. */
        String parse(byte[] input, int iteration) throws Throwable;
    }

    /** The outcome counts of one run. */
    public record Report(String parser, long seed, int iterations, int planned, long millis, int accepted,
                         Map<String, Integer> typed, List<String> unclean) {
        @Override
        public String toString() {
            return "fuzz " + parser + ": iterations=" + iterations + " (of " + planned + ") seed=" + seed
                    + " accepted=" + accepted + " typed=" + typed + " unclean=" + unclean.size() + " in " + millis
                    + " ms";
        }
    }

    private FuzzLoop() {
    }

    /**
     * Runs {@code target} on mutations of {@code corpus}; {@code typed} are the exception types that are a clean
     * refusal; {@code dictionary} tokens (may be empty) are inserted or written over the input.
     */
    public static Report run(String parser, List<byte[]> corpus, int ciIterations, List<byte[]> dictionary,
                             Target target, List<Class<? extends Throwable>> typed) {
        String given = System.getProperty(ITERATIONS);
        int planned = given == null ? ciIterations : Integer.parseInt(given.trim());
        long seed = Long.getLong(SEED, DEFAULT_SEED);
        double seconds = Double.parseDouble(System.getProperty(SECONDS, given == null ? "5" : "0"));
        long deadline = seconds <= 0 ? Long.MAX_VALUE : System.nanoTime() + (long) (seconds * 1e9);
        SplittableRandom random = new SplittableRandom(seed ^ parser.hashCode());
        Map<String, Integer> refusals = new TreeMap<>();
        List<String> unclean = new ArrayList<>();
        int accepted = 0;
        int done = 0;
        long start = System.nanoTime();
        for (; done < planned && System.nanoTime() < deadline; done++) {
            byte[] input = mutate(corpus.get(random.nextInt(corpus.size())), random, dictionary);
            String problem;
            try {
                problem = target.parse(input, done);
                if (problem == null) {
                    accepted++;
                }
            } catch (Throwable t) {
                problem = classify(t, typed);
                if (problem == null) {
                    refusals.merge(t.getClass().getSimpleName(), 1, Integer::sum);
                }
            }
            if (problem != null) {
                unclean.add("iteration " + done + ": " + problem + " (input " + save(parser, done, input) + ")");
            }
        }
        Report report = new Report(parser, seed, done, planned, (System.nanoTime() - start) / 1_000_000, accepted,
                refusals, unclean);
        System.out.println(report);
        return report;
    }

    private static String classify(Throwable t, List<Class<? extends Throwable>> typed) {
        boolean isTyped = typed.stream().anyMatch(type -> type.isInstance(t));
        if (!isTyped) {
            StackTraceElement[] at = t.getStackTrace();
            return t.getClass().getName() + ": " + firstLine(t.getMessage()) + (at.length == 0 ? "" : " at " + at[0]);
        }
        String message = t.getMessage();
        if (message == null || message.isBlank()) {
            return t.getClass().getName() + " without a message";
        }
        if (message.contains("\n")) {
            return t.getClass().getName() + " over several lines: " + firstLine(message);
        }
        return null;
    }

    private static String firstLine(String message) {
        if (message == null) {
            return "null";
        }
        int end = message.indexOf('\n');
        return end < 0 ? message : message.substring(0, end);
    }

    private static String save(String parser, int iteration, byte[] input) {
        try {
            Path dir = Files.createDirectories(Path.of("target", "fuzz-failures"));
            return Files.write(dir.resolve(parser + "-" + iteration + ".bin"), input).toString();
        } catch (IOException e) {
            return "not saved: " + e;
        }
    }

    /** One to four stacked mutations of {@code seed}. */
    static byte[] mutate(byte[] seed, SplittableRandom r, List<byte[]> dictionary) {
        byte[] b = seed.clone();
        int count = 1 + r.nextInt(4);
        for (int m = 0; m < count; m++) {
            int kind = r.nextInt(dictionary.isEmpty() ? 10 : 12);
            int at = b.length == 0 ? 0 : r.nextInt(b.length);
            switch (kind) {
                case 0 -> {
                    if (b.length > 0) {
                        b[at] ^= (byte) (1 << r.nextInt(8));
                    }
                }
                case 1 -> {
                    if (b.length > 0) {
                        b[at] = (byte) new int[] {0, 0xFF, 0x7F, 0x80, 1, r.nextInt(256)}[r.nextInt(6)];
                    }
                }
                case 2 -> {
                    if (b.length >= 4) {
                        int where = r.nextBoolean() ? r.nextInt(b.length / 4) * 4 : r.nextInt(b.length - 3);
                        int value = r.nextInt(4) == 0 ? r.nextInt() : INTS[r.nextInt(INTS.length)];
                        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putInt(where, value);
                    }
                }
                case 3 -> {
                    if (b.length >= 8) {
                        int where = r.nextBoolean() ? r.nextInt(b.length / 8) * 8 : r.nextInt(b.length - 7);
                        long value = r.nextInt(4) == 0 ? r.nextLong() : LONGS[r.nextInt(LONGS.length)];
                        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(where, value);
                    }
                }
                case 4 -> b = Arrays.copyOf(b, b.length == 0 ? 0 : r.nextInt(b.length));
                case 5 -> {
                    byte[] more = new byte[1 + r.nextInt(64)];
                    r.nextBytes(more);
                    b = concat(b, b.length, more, b.length);
                }
                case 6 -> {
                    byte[] more = new byte[1 + r.nextInt(16)];
                    r.nextBytes(more);
                    b = concat(b, at, more, at);
                }
                case 7 -> {
                    int length = b.length == 0 ? 0 : 1 + r.nextInt(Math.min(64, b.length - at));
                    byte[] out = new byte[b.length - length];
                    System.arraycopy(b, 0, out, 0, at);
                    System.arraycopy(b, at + length, out, at, b.length - at - length);
                    b = out;
                }
                case 8, 9 -> {
                    if (b.length > 1) {
                        int from = r.nextInt(b.length);
                        int length = 1 + r.nextInt(Math.min(32, b.length - Math.max(from, at)));
                        System.arraycopy(b.clone(), from, b, at, Math.min(length, b.length - from));
                    }
                }
                default -> {
                    byte[] token = dictionary.get(r.nextInt(dictionary.size()));
                    if (kind == 10 || b.length < token.length) {
                        b = concat(b, at, token, at);
                    } else {
                        System.arraycopy(token, 0, b, Math.min(at, b.length - token.length), token.length);
                    }
                }
            }
        }
        return b;
    }

    /** {@code a[0, cut)} + {@code insert} + {@code a[resume, end)}. */
    private static byte[] concat(byte[] a, int cut, byte[] insert, int resume) {
        byte[] out = new byte[cut + insert.length + a.length - resume];
        System.arraycopy(a, 0, out, 0, cut);
        System.arraycopy(insert, 0, out, cut, insert.length);
        System.arraycopy(a, resume, out, cut + insert.length, a.length - resume);
        return out;
    }

    /** Dictionary tokens from text (UTF-8). */
    public static List<byte[]> tokens(String... text) {
        List<byte[]> out = new ArrayList<>();
        for (String t : text) {
            out.add(t.getBytes(StandardCharsets.UTF_8));
        }
        return out;
    }
}
