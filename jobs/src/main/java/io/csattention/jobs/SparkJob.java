package io.csattention.jobs;

import io.csattention.spark.CSAttentionOptions;
import org.apache.spark.SparkConf;
import org.apache.spark.sql.SparkSession;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * What the Spark commands share: the session (embedded {@code local[*]} when no {@code spark.master} is set, as under
 * {@code java -jar}; spark-submit's master otherwise), the CSAttention options given as flags or as
 * {@code --option key=value}, and the mapping of a failed Spark job to the one line a user sees.
 */
final class SparkJob {

    private SparkJob() {
    }

    /** Flags for the options of {@link CSAttentionOptions}; only those given are passed on. */
    static final class OptionFlags {
        @Option(names = "--sparsity", description = "Share of keys not attended, in (0, 1) (default 0.95).")
        String sparsity;
        @Option(names = "--subspaces",
                description = "m, subspaces of the head dimension (default: d/16, d/4 below 32).")
        String subspaces;
        @Option(names = "--centroids", description = "C, k-means centroids per subspace (default: 128, at most the "
                + "prefill queries).")
        String centroids;
        @Option(names = "--list-fraction", description = "alpha, each list keeps ceil(alpha N) keys (default: "
                + "2.4 times the budget's share, at least 64 keys).")
        String listFraction;
        @Option(names = "--sink", description = "Forced leading keys (default: automatic).")
        String sink;
        @Option(names = "--window", description = "Forced trailing keys (default: automatic).")
        String window;
        @Option(names = "--seed", description = "Seed of k-means and sampling (default 42).")
        String seed;
        @Option(names = "--backend", description = "Kernels: auto, simd or scalar (default auto).")
        String backend;
        @Option(names = "--option", paramLabel = "KEY=VALUE", description = "Any key of conf/csattention-defaults.conf"
                + " (repeatable), e.g. --option cacheBudget=2g.")
        Map<String, String> more = new LinkedHashMap<>();

        /** Option key -> the flag the user typed it with, for error messages. */
        final Map<String, String> typed = new LinkedHashMap<>();

        Map<String, String> toMap() {
            Map<String, String> out = new LinkedHashMap<>();
            flag(out, CSAttentionOptions.SPARSITY, sparsity, "--sparsity");
            flag(out, CSAttentionOptions.SUBSPACES, subspaces, "--subspaces");
            flag(out, CSAttentionOptions.CENTROIDS, centroids, "--centroids");
            flag(out, CSAttentionOptions.LIST_FRACTION, listFraction, "--list-fraction");
            flag(out, CSAttentionOptions.SINK, sink, "--sink");
            flag(out, CSAttentionOptions.WINDOW, window, "--window");
            flag(out, CSAttentionOptions.SEED, seed, "--seed");
            flag(out, CSAttentionOptions.BACKEND, backend, "--backend");
            out.putAll(more);
            return out;
        }

        /** Puts {@code value} under {@code key} when given, remembering that the user typed it as {@code flag}. */
        void flag(Map<String, String> out, String key, String value, String flag) {
            if (value != null) {
                out.put(key, value);
                typed.put(key, flag);
            }
        }

        /**
         * {@link CSAttentionOptions#parse} of {@code options}; an error names the flag the user typed
         * ({@code --list-fraction}), not the option key behind it ({@code listFraction}).
         */
        CSAttentionOptions parse(Map<String, String> options) {
            try {
                return CSAttentionOptions.parse(options);
            } catch (IllegalArgumentException e) {
                throw named(e);
            }
        }

        /** {@code e} with the option keys the user typed as flags replaced by those flags. */
        IllegalArgumentException named(IllegalArgumentException e) {
            String message = e.getMessage();
            for (Map.Entry<String, String> t : typed.entrySet()) {
                message = message.replaceAll("(?<![\\w-])" + java.util.regex.Pattern.quote(t.getKey())
                        + "(?![\\w-])", java.util.regex.Matcher.quoteReplacement(t.getValue()));
            }
            return new IllegalArgumentException(message, e);
        }
    }

    static void put(Map<String, String> out, String key, String value) {
        if (value != null) {
            out.put(key, value);
        }
    }

    /** The session of this JVM; {@code local[*]} unless a master is configured. */
    static SparkSession session(String appName) {
        SparkConf conf = new SparkConf();
        SparkSession.Builder builder = SparkSession.builder().appName(appName);
        if (!conf.contains("spark.master")) {
            builder.master("local[*]").config("spark.ui.showConsoleProgress", "true");
        }
        SparkSession spark = builder.getOrCreate();
        spark.sparkContext().setLogLevel("WARN");
        return spark;
    }

    /**
     * The user's problem inside a failed Spark job: the first IllegalArgumentException, IOException or
     * AnalysisException (a missing input path, an output path that exists) in the cause chain (a task's exception
     * arrives wrapped in a SparkException), or the exception itself.
     */
    static Exception unwrap(Exception e) {
        Throwable t = e;
        while (t != null) {
            if (t instanceof IllegalArgumentException iae) {
                return new IllegalArgumentException(iae.getMessage());
            }
            if (t instanceof IOException io) {
                return new IOException(io.getMessage());
            }
            if (t instanceof org.apache.spark.sql.AnalysisException analysis) {
                return new IllegalArgumentException(analysis.getMessage());
            }
            t = t.getCause() == t ? null : t.getCause();
        }
        return e;
    }
}
