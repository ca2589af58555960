package io.csattention.jobs;

import picocli.CommandLine;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.ParseResult;

import java.math.BigDecimal;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.function.Predicate;

/**
 * The one range check of every numeric option of every command, run by {@link Main} after picocli has parsed a
 * command line and before the command does any work. A value out of range is one line, exit code 2:
 * {@code --centroids must be an integer in [1, 65536]; --centroids=-3}. {@code NumericOptionsTest} checks that every
 * numeric option of every command has a range here and that every default lies in it.
 *
 * <p>The limits keep every array a command allocates from the values within Java's array size and the sizes that
 * make sense for the method: a context of at most 2^24 tokens, a head of at most 4096 dimensions, at most 1024
 * threads. Commands that allocate from several values at once check the product too ({@link #requireHeap}).
 */
final class NumericOptions {

    /** The longest context any command generates or accepts, in tokens (2^24). */
    static final long MAX_TOKENS = 1L << 24;
    /** The most floats one Java array holds. */
    static final long MAX_ARRAY = Integer.MAX_VALUE - 8;

    /** A numeric option's allowed values: {@code integer} or any finite decimal, accepted by {@code test}. */
    record Range(boolean integer, String requirement, Predicate<BigDecimal> test) {

        static Range integers(long min, long max) {
            return new Range(true, "an integer in [" + min + ", " + max + "]",
                    v -> v.compareTo(BigDecimal.valueOf(min)) >= 0 && v.compareTo(BigDecimal.valueOf(max)) <= 0);
        }

        static Range anyInteger() {
            return new Range(true, "an integer", v -> v.compareTo(BigDecimal.valueOf(Long.MIN_VALUE)) >= 0
                    && v.compareTo(BigDecimal.valueOf(Long.MAX_VALUE)) <= 0);
        }

        static Range decimals(String requirement, Predicate<BigDecimal> test) {
            return new Range(false, requirement, test);
        }

        /** The one-line problem with {@code text} under {@code flag}, or empty when it is allowed. */
        Optional<String> problem(String flag, String text) {
            BigDecimal value;
            try {
                value = new BigDecimal(text.trim());
            } catch (NumberFormatException e) {
                return Optional.of(flag + " must be " + (integer ? requirement : "a number " + requirement) + "; "
                        + flag + "=" + text);
            }
            boolean whole = value.signum() == 0 || value.stripTrailingZeros().scale() <= 0;
            if (integer && !whole || !test.test(value)) {
                return Optional.of(flag + " must be " + requirement + "; " + flag + "=" + text);
            }
            return Optional.empty();
        }
    }

    private static final BigDecimal ZERO = BigDecimal.ZERO;
    private static final BigDecimal ONE = BigDecimal.ONE;

    private static final Range SPARSITY = Range.decimals("in (0, 1)",
            v -> v.compareTo(ZERO) > 0 && v.compareTo(ONE) < 0);
    private static final Range SEED = Range.anyInteger();
    private static final Range TOKENS = Range.integers(16, MAX_TOKENS);
    private static final Range LENGTH = Range.integers(1, MAX_TOKENS);
    private static final Range COUNT = Range.integers(1, 1 << 20);
    private static final Range SMALL_COUNT = Range.integers(1, 65536);
    private static final Range REPEATS = Range.integers(1, 1000);

    /** Ranges by option name; {@link #BY_COMMAND} overrides them for one command. */
    private static final Map<String, Range> RANGES = Map.ofEntries(
            Map.entry("--sparsity", SPARSITY),
            Map.entry("--model-sparsity", SPARSITY),
            Map.entry("--seed", SEED),
            Map.entry("--data-seed", SEED),
            Map.entry("--tokens", TOKENS),
            Map.entry("--model-tokens", Range.integers(2, MAX_TOKENS)),
            Map.entry("--context-tokens", LENGTH),
            Map.entry("--max-new-tokens", LENGTH),
            Map.entry("--new-tokens", LENGTH),
            Map.entry("--question-tokens", LENGTH),
            Map.entry("--rope-decode-span", LENGTH),
            Map.entry("--head-dim", Range.integers(4, 4096)),
            Map.entry("--queries", COUNT),
            Map.entry("--query-count", COUNT),
            Map.entry("--prefill-queries", Range.integers(1, MAX_TOKENS)),
            Map.entry("--threads", Range.integers(1, 1024)),
            Map.entry("--centroids", Range.integers(1, 65536)),
            // the decoder counts a key's lists in 8 bits
            Map.entry("--subspaces", Range.integers(1, 255)),
            Map.entry("--list-fraction", Range.decimals("in (0, 1] or 0 for automatic",
                    v -> v.compareTo(ZERO) >= 0 && v.compareTo(ONE) <= 0)),
            Map.entry("--kmeans-iterations", REPEATS),
            Map.entry("--sink", Range.integers(0, MAX_TOKENS)),
            Map.entry("--window", Range.integers(0, MAX_TOKENS)),
            Map.entry("--rescore-factor", Range.decimals("0 (no re-scoring) or in [1, 1000]",
                    v -> v.signum() == 0 || v.compareTo(ONE) >= 0 && v.compareTo(BigDecimal.valueOf(1000)) <= 0)),
            Map.entry("--partitions", Range.integers(1, 1_000_000)),
            Map.entry("--query-heads-per-kv-head", Range.integers(1, 1024)),
            Map.entry("--rope-base", Range.decimals("in (1, 1e12]",
                    v -> v.compareTo(ONE) > 0 && v.compareTo(new BigDecimal("1e12")) <= 0)),
            Map.entry("--topics", SMALL_COUNT),
            Map.entry("--needles", Range.integers(0, 65536)),
            Map.entry("--temperature", Range.decimals("in [0, 100]",
                    v -> v.signum() >= 0 && v.compareTo(BigDecimal.valueOf(100)) <= 0)),
            Map.entry("--top-p", Range.decimals("in (0, 1]", v -> v.signum() > 0 && v.compareTo(ONE) <= 0)),
            Map.entry("--contexts", SMALL_COUNT),
            Map.entry("--model-contexts", SMALL_COUNT),
            Map.entry("--continuations", SMALL_COUNT),
            Map.entry("--questions", SMALL_COUNT),
            Map.entry("--layers", Range.integers(1, 1024)),
            Map.entry("--kv-heads", Range.integers(1, 1024)),
            Map.entry("--repeats", REPEATS),
            Map.entry("--repetitions", REPEATS),
            Map.entry("--full-query-block", SMALL_COUNT),
            Map.entry("--gpu", Range.integers(0, 1023)),
            Map.entry("--prefill-tokens", Range.integers(1, MAX_TOKENS)),
            Map.entry("--decode-tokens", Range.integers(1, 65536)),
            Map.entry("--batches", Range.integers(1, 4096)),
            Map.entry("--batch-new-tokens", Range.integers(1, 65536)),
            Map.entry("--rows", Range.integers(1, 1L << 31)),
            Map.entry("--distinct-queries", COUNT),
            Map.entry("--query-files", Range.integers(1, 10_000)),
            Map.entry("--heads", Range.integers(1, 1024)),
            Map.entry("--gemm-batches", Range.integers(1, 65536)));

    /** Ranges that differ for one command, keyed {@code "command --option"}. */
    private static final Map<String, Range> BY_COMMAND = Map.of(
            // dump-qkv decodes its queries one token at a time with full attention
            "dump-qkv --queries", Range.integers(1, 65536));

    /** Options held as text (unset must stay unset) that are numbers: checked like the typed ones. */
    private static final Set<String> NUMERIC_TEXT = Set.of("--subspaces", "--centroids", "--list-fraction",
            "--kmeans-iterations", "--sink", "--window", "--rescore-factor", "--sparsity", "--seed", "--partitions",
            "--query-heads-per-kv-head", "--rope-base");

    private static final Set<Class<?>> NUMBERS = Set.of(int.class, Integer.class, long.class, Long.class,
            double.class, Double.class, float.class, Float.class);

    private NumericOptions() {
    }

    /** Whether {@code option} holds a number (or numbers): typed so, or a numeric option held as text. */
    static boolean isNumeric(OptionSpec option) {
        Class<?> type = option.type();
        if (NUMBERS.contains(type)) {
            return true;
        }
        if (type.isArray() && NUMBERS.contains(type.getComponentType())) {
            return true;
        }
        if (List.class.isAssignableFrom(type)) {
            Class<?>[] element = option.auxiliaryTypes();
            return element.length == 1 && NUMBERS.contains(element[0]);
        }
        return type == String.class && NUMERIC_TEXT.contains(option.longestName());
    }

    /** The range of {@code option} in {@code command}, if it has one. */
    static Optional<Range> rangeOf(String command, OptionSpec option) {
        String name = option.longestName();
        Range range = BY_COMMAND.get(command + " " + name);
        return Optional.ofNullable(range != null ? range : RANGES.get(name));
    }

    /** The first problem among the values the user gave {@code command}'s numeric options, if any. */
    static Optional<String> problem(ParseResult command) {
        String name = command.commandSpec().name();
        for (OptionSpec option : command.matchedOptions()) {
            if (!isNumeric(option)) {
                continue;
            }
            Optional<Range> range = rangeOf(name, option);
            if (range.isEmpty()) {
                continue;
            }
            for (String value : option.stringValues()) {
                Optional<String> problem = range.get().problem(option.longestName(), value);
                if (problem.isPresent()) {
                    return problem;
                }
            }
        }
        return Optional.empty();
    }

    /** The picocli execution strategy of {@link Main}: the range check of the command to run, then the command. */
    static int checkThenRun(ParseResult parsed) {
        ParseResult last = parsed;
        while (last.hasSubcommand()) {
            last = last.subcommand();
        }
        Optional<String> problem = problem(last);
        if (problem.isPresent() && !last.isUsageHelpRequested() && !last.isVersionHelpRequested()) {
            CommandSpec spec = last.commandSpec();
            throw new CommandLine.ExecutionException(spec.commandLine(), problem.get(),
                    new IllegalArgumentException(problem.get()));
        }
        return new CommandLine.RunLast().execute(parsed);
    }

    /**
     * Fails with one line before a command allocates {@code floats} floats in one array ({@code what}, e.g.
     * {@code --tokens x --head-dim}) or {@code bytes} in all when the JVM's heap cannot hold them.
     */
    static void requireHeap(String command, String what, long floats, long bytes) {
        if (floats > MAX_ARRAY) {
            throw new IllegalArgumentException(what + " must be at most " + MAX_ARRAY + " floats (one Java array); "
                    + what + "=" + floats);
        }
        long max = Runtime.getRuntime().maxMemory();
        if (bytes > max) {
            throw new IllegalArgumentException(command + " needs about " + (bytes >> 20) + " MiB of heap for "
                    + what + " = " + floats + " floats, more than the JVM's maximum (raise -Xmx); max heap MiB="
                    + (max >> 20));
        }
    }
}
