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
        @Option(names = "--sparsity", description = "Share of keys not attended, in (0, 1) (default "
                + io.csattention.core.CSAttentionSettings.DEFAULT_SPARSITY + ").")
        String sparsity;
        @Option(names = "--seed", description = "Seed of k-means and sampling (default "
                + io.csattention.core.CSAttentionSettings.DEFAULT_SEED + ").")
        String seed;
        @Option(names = "--kernels", description = "CPU kernels on the executors: auto, simd or scalar (default auto).")
        String kernels;
        @Option(names = "--option", paramLabel = "KEY=VALUE", description = "Any key of conf/csattention-defaults.conf"
                + " (repeatable), e.g. --option cacheBudget=2g.")
        Map<String, String> more = new LinkedHashMap<>();

        /** Option key -> the flag the user typed it with, for error messages. */
        final Map<String, String> typed = new LinkedHashMap<>();

        Map<String, String> toMap() {
            Map<String, String> out = new LinkedHashMap<>();
            flag(out, CSAttentionOptions.SPARSITY, sparsity, "--sparsity");
            flag(out, CSAttentionOptions.SEED, seed, "--seed");
            flag(out, CSAttentionOptions.KERNELS, kernels, "--kernels");
            out.putAll(more);
            return out;
        }

        /** Puts {@code value} under {@code key} when given, remembering that the user typed it as {@code flag}. */
        void flag(Map<String, String> out, String key, String value, String flag) {
            Flags.put(out, typed, key, value, flag);
        }

        /** {@link CSAttentionOptions#parse} of {@code options}; an error names the flag the user typed. */
        CSAttentionOptions parse(Map<String, String> options) {
            return Flags.parse(options, typed);
        }

        /** {@code e} with the option keys the user typed as flags replaced by those flags. */
        IllegalArgumentException named(IllegalArgumentException e) {
            return Flags.named(e, typed);
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
