package io.csattention.jobs;

import io.csattention.spark.CSAttention;
import io.csattention.spark.CSAttentionMetrics;
import io.csattention.spark.CSAttentionOptions;
import org.apache.spark.sql.SparkSession;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.util.Map;
import java.util.concurrent.Callable;

/** {@code decode}: a queries Parquet table against an index set, to an output Parquet table. */
@Command(name = "decode", mixinStandardHelpOptions = true,
        description = {"Decodes a queries Parquet table (query_id, context_id, layer, head, query) against the index "
                + "set at --index and writes query_id, context_id, layer, head, kv_head, output, [selected_ids], "
                + "decode_nanos, [error] as Parquet to --out."})
final class DecodeCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Mixin
    SparkJob.Logging logging;

    @Option(names = "--queries", required = true, description = "Queries table (Parquet).")
    String queries;

    @Option(names = "--index", required = true, description = "Index set path (written by build-index).")
    String index;

    @Option(names = "--out", required = true, description = "Output Parquet path (must not exist).")
    String out;

    @Option(names = "--with-selected", description = "Add the selected key ids to each row.")
    boolean withSelected;

    @Option(names = "--on-error", description = "fail (default): a bad query row fails the job naming its query_id; "
            + "route: it gets an error column and the rest decode.")
    String onError;

    @Option(names = "--cache-budget", description = "Bytes of loaded indexes per executor, e.g. 2g (default "
            + (CSAttentionOptions.DEFAULT_CACHE_BUDGET >> 20) + "m).")
    String cacheBudget;

    @Option(names = "--broadcast-threshold", description = "Broadcast whole index files up to this total, e.g. 64m "
            + "(default " + (CSAttentionOptions.DEFAULT_BROADCAST_THRESHOLD >> 20) + "m).")
    String broadcastThreshold;

    @Option(names = "--query-heads-per-kv-head", description = "GQA group size, checked against the one the index "
            + "set recorded at build time (not needed: the queries' head is the query head, mapped to its KV head "
            + "with the recorded size).")
    String group;

    @Mixin
    DecodeFlags decode;

    @Mixin
    SparkJob.OptionFlags flags;

    @Override
    public Integer call() throws Exception {
        Map<String, String> options = flags.toMap();
        SparkJob.put(options, CSAttentionOptions.WITH_SELECTED, withSelected ? "true" : null);
        SparkJob.put(options, CSAttentionOptions.ON_ERROR, onError);
        SparkJob.put(options, CSAttentionOptions.CACHE_BUDGET, cacheBudget);
        SparkJob.put(options, CSAttentionOptions.BROADCAST_THRESHOLD, broadcastThreshold);
        flags.flag(options, CSAttentionOptions.QUERY_HEADS_PER_KV_HEAD, group, "--query-heads-per-kv-head");
        decode.into(options, flags.typed);
        flags.parse(options);
        PrintWriter stdout = spec.commandLine().getOut();
        SparkSession spark = SparkJob.session("csattention decode", logging);
        try {
            CSAttentionMetrics metrics = new CSAttentionMetrics(spark.sparkContext());
            long start = System.nanoTime();
            spark.sparkContext().setJobGroup("csattention-decode", "csattention: decode " + queries, false);
            SparkJob.writing(spark, out, "--out", true, false, () -> {
                CSAttention.decode(spark.read().parquet(queries), index, options, metrics).write().parquet(out);
                return null;
            });
            double seconds = (System.nanoTime() - start) / 1e9;
            long rows = metrics.queriesDecoded.value() + metrics.queryErrors.value();
            stdout.printf("decoded %d query rows into %s in %.1f s (%.0f queries/s); counters %s; index loads per "
                    + "executor %s%n", rows, out, seconds, rows / seconds, metrics.values(), metrics.loadsByExecutor());
            return 0;
        } catch (IllegalArgumentException bad) {
            throw flags.named(bad);
        } finally {
            spark.stop();
        }
    }
}
