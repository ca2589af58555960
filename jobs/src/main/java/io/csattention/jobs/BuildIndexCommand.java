package io.csattention.jobs;

import io.csattention.spark.CSAttention;
import io.csattention.spark.CSAttentionOptions;
import io.csattention.spark.IndexSet;
import org.apache.spark.sql.SparkSession;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

import java.io.PrintWriter;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code build-index}: a tensor-level contexts table (Parquet) to a committed index set; with {@code --model}, a
 * model-level table (context_id, tokens) prefilled by the model on the executors first.
 */
@Command(name = "build-index", mixinStandardHelpOptions = true,
        description = {"Builds one CSAttention index per context, layer and KV head of a contexts Parquet table "
                + "(columns context_id, layer, kv_head, keys, values, prefill_queries, and head_dim when a tensor is "
                + "flattened; optional chunk, query_heads_per_kv_head, prefill_positions, rope_base, rope_style, rope_frequencies) and commits them atomically as an index set at --out (any Hadoop "
                + "FileSystem path). With --model FILE the table is model-level instead (columns context_id and "
                + "text string or tokens array<int>): the executors tokenize (text) and prefill each context once "
                + "with the model and build its layers' and KV heads' indexes."})
final class BuildIndexCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Mixin
    SparkJob.Logging logging;

    @Option(names = "--contexts", required = true, description = "Contexts table (Parquet).")
    String contexts;

    @Option(names = "--model", paramLabel = "FILE", description = "Model file (llama2.c or GGUF, the same local path "
            + "on every executor): the contexts table is model-level (context_id, text or tokens).")
    java.nio.file.Path model;

    @Option(names = "--tokenizer", paramLabel = "FILE", description = "llama2.c tokenizer.bin, for a text contexts "
            + "table with a llama2.c checkpoint (GGUF files carry their own vocabulary).")
    java.nio.file.Path tokenizer;

    @Option(names = "--out", required = true, description = "Index set path.")
    String out;

    @Option(names = "--mode", defaultValue = "errorifexists",
            description = "errorifexists, overwrite or append (default ${DEFAULT-VALUE}).")
    String mode;

    @Option(names = "--partitions", description = "Build partitions (default: spark.sql.shuffle.partitions).")
    String partitions;

    @Option(names = "--query-heads-per-kv-head", paramLabel = "G", description = "GQA group size of every head, "
            + "recorded in the index set so decode maps query heads to KV heads (default 1; a "
            + "query_heads_per_kv_head column overrides it per head; --model takes the model's).")
    String group;

    @Option(names = "--rope-base", paramLabel = "B", description = "RoPE base the tensors' keys and prefill queries "
            + "carry (default: none; a rope_base column overrides it; --model takes the model's). Slow bands are "
            + "then indexed position-free and decode de-rotates each query at its position.")
    String ropeBase;

    @Option(names = "--rope-style", description = "RoPE pairing: interleaved (2p, 2p+1) or half (p, p + d/2) "
            + "(default interleaved; a rope_style column overrides it).")
    String ropeStyle;

    @Mixin
    BuildFlags build;

    @Mixin
    SparkJob.OptionFlags flags;

    @Override
    public Integer call() throws Exception {
        Map<String, String> options = flags.toMap();
        SparkJob.put(options, CSAttentionOptions.PARTITIONS, partitions);
        flags.flag(options, CSAttentionOptions.QUERY_HEADS_PER_KV_HEAD, group, "--query-heads-per-kv-head");
        flags.flag(options, CSAttentionOptions.ROPE_BASE, ropeBase, "--rope-base");
        flags.flag(options, CSAttentionOptions.ROPE_STYLE, ropeStyle, "--rope-style");
        build.into(options, flags.typed);
        flags.parse(options);
        options.put(CSAttention.MODE, mode);
        if (tokenizer != null) {
            if (model == null) {
                throw new IllegalArgumentException("--tokenizer needs --model; tokenizer=" + tokenizer);
            }
            if (!java.nio.file.Files.isRegularFile(tokenizer)) {
                throw new java.io.IOException("tokenizer file must exist; tokenizer=" + tokenizer);
            }
            options.put(io.csattention.spark.ModelPrefill.TOKENIZER, tokenizer.toString());
        }
        if (model != null && !java.nio.file.Files.isRegularFile(model)) {
            throw new java.io.IOException("model file must exist; model=" + model);
        }
        PrintWriter stdout = spec.commandLine().getOut();
        SparkSession spark = SparkJob.session("csattention build-index", logging);
        try {
            long start = System.nanoTime();
            IndexSet.Manifest manifest = SparkJob.writing(spark, out, "--out", false, true, () -> model == null
                    ? CSAttention.buildIndexes(spark.read().parquet(contexts), out, options)
                    : CSAttention.buildIndexes(spark.read().parquet(contexts), model.toString(), out, options));
            double seconds = (System.nanoTime() - start) / 1e9;
            long bytes = manifest.heads().stream().mapToLong(IndexSet.Entry::bytes).sum();
            long contextCount = manifest.heads().stream().map(IndexSet.Entry::contextId).distinct().count();
            stdout.printf("index set %s commit %d: %d heads of %d contexts, %d bytes, built in %.1f s; counters %s%n",
                    out, manifest.commit(), manifest.heads().size(), contextCount, bytes, seconds,
                    manifest.counters());
            return 0;
        } finally {
            spark.stop();
        }
    }
}
