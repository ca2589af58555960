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

    /**
     * {@code --verbose}, a mixin of every Spark command. Spark's own logging is off below WARN by default (the
     * bundled log4j2.properties, and the level set on the session), and its reports of a failed task are off
     * altogether, because the command reports the failure as one line; {@code --verbose} turns all of them back on.
     */
    static final class Logging {
        @Option(names = "--verbose", description = "Spark's own log at INFO on stderr, with its reports of failed "
                + "tasks (by default only warnings, and a failure as the one line of its root cause).")
        boolean verbose;
    }

    /** The session of this JVM, quiet; {@code local[*]} unless a master is configured. */
    static SparkSession session(String appName) {
        return session(appName, new Logging());
    }

    /** The session of this JVM; {@code local[*]} unless a master is configured. */
    static SparkSession session(String appName, Logging logging) {
        if (logging.verbose) {
            // every configured logger, the ones the bundled configuration turns off included
            org.apache.logging.log4j.core.config.Configurator.setAllLevels(
                    org.apache.logging.log4j.LogManager.ROOT_LOGGER_NAME, org.apache.logging.log4j.Level.INFO);
        }
        SparkConf conf = new SparkConf();
        SparkSession.Builder builder = SparkSession.builder().appName(appName);
        if (!conf.contains("spark.master")) {
            builder.master("local[*]").config("spark.ui.showConsoleProgress", "true");
        }
        SparkSession spark = builder.getOrCreate();
        if (!logging.verbose) {
            // under spark-submit the cluster's log4j2.properties may log Spark at INFO
            spark.sparkContext().setLogLevel("WARN");
        }
        return spark;
    }

    /** What a Spark command does once its output path is checked. */
    interface Job<T> {
        T run() throws Exception;
    }

    /**
     * Runs {@code job}, which writes {@code path}; when {@code newPath}, the path must not exist yet (checked before
     * any work, one line naming {@code flag}). When the job fails and the path did not exist before it, what the job
     * left there is removed (an index set path only when no manifest and no file is in it), so that a rerun is not
     * refused with "path already exists". The failure is then {@link #unwrap unwrapped} to its root cause.
     */
    static <T> T writing(SparkSession spark, String path, String flag, boolean newPath, boolean indexSet, Job<T> job)
            throws Exception {
        org.apache.hadoop.fs.Path target = new org.apache.hadoop.fs.Path(path);
        org.apache.hadoop.fs.FileSystem fs = target.getFileSystem(spark.sparkContext().hadoopConfiguration());
        boolean existed = fs.exists(target);
        if (existed && newPath) {
            throw new IllegalArgumentException(flag + " must not exist yet; " + flag + "=" + path);
        }
        try {
            return job.run();
        } catch (Exception e) {
            clearProgressBar(spark);
            if (!existed) {
                removeLeftovers(fs, target, indexSet);
            }
            throw unwrap(e);
        }
    }

    /**
     * Spark clears its console progress bar when a job succeeds, not when it fails: cleared here, the error line
     * starts a line of its own.
     */
    private static void clearProgressBar(SparkSession spark) {
        scala.Option<org.apache.spark.ui.ConsoleProgressBar> bar = spark.sparkContext().progressBar();
        if (bar.isDefined()) {
            bar.get().finishAll();
        }
    }

    private static void removeLeftovers(org.apache.hadoop.fs.FileSystem fs, org.apache.hadoop.fs.Path target,
                                        boolean indexSet) {
        try {
            if (!fs.exists(target)) {
                return;
            }
            if (indexSet) {
                // another writer may have committed here meanwhile, or still be writing its files: keep those
                if (io.csattention.spark.IndexSet.latest(fs, target).isPresent()
                        || fs.listFiles(target, true).hasNext()) {
                    return;
                }
            }
            fs.delete(target, true);
        } catch (IOException | RuntimeException cleanup) {
            org.slf4j.LoggerFactory.getLogger(SparkJob.class).warn("could not remove {} after the failed job: {}",
                    target, cleanup.toString());
        }
    }

    /** A task's exception as Spark prints it in a job failure's message, when the exception itself is not attached. */
    private static final java.util.regex.Pattern TASK_FAILURE = java.util.regex.Pattern.compile(
            "(?:java\\.lang\\.IllegalArgumentException|java\\.io\\.[A-Za-z]*Exception"
                    + "|io\\.csattention\\.[\\w.$]+(?:Exception|Conflict)): ([^\\n]*)");

    /**
     * The user's problem inside a failed Spark job: a bad query row's line ({@code CSAttention.badQueryRow}), the
     * first IllegalArgumentException, IOException or
     * AnalysisException (a missing input path, an output path that exists) in the cause chain (a task's exception
     * arrives wrapped in a SparkException), else the task's exception as the job failure's message names it (an
     * executor's exception that did not travel), or the exception itself. The original stays the cause, for
     * {@code --stacktrace}.
     */
    static Exception unwrap(Exception e) {
        String badRow = io.csattention.spark.CSAttention.badQueryRow(e);
        if (badRow != null) {
            return new IllegalArgumentException(badRow, e);
        }
        Throwable t = e;
        while (t != null) {
            if (t instanceof IllegalArgumentException iae) {
                return new IllegalArgumentException(iae.getMessage(), e);
            }
            if (t instanceof IOException io) {
                return new IOException(io.getMessage(), e);
            }
            if (t instanceof org.apache.spark.sql.AnalysisException analysis) {
                return new IllegalArgumentException(analysis.getMessage(), e);
            }
            t = t.getCause() == t ? null : t.getCause();
        }
        if (e instanceof org.apache.spark.SparkException && e.getMessage() != null) {
            java.util.regex.Matcher task = TASK_FAILURE.matcher(e.getMessage());
            if (task.find()) {
                return new IllegalArgumentException(task.group(1).strip(), e);
            }
        }
        return e;
    }
}
