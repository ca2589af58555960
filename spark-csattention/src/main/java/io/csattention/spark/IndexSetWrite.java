package io.csattention.spark;

import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.connector.distributions.Distribution;
import org.apache.spark.sql.connector.distributions.Distributions;
import org.apache.spark.sql.connector.expressions.Expression;
import org.apache.spark.sql.connector.expressions.Expressions;
import org.apache.spark.sql.connector.expressions.SortDirection;
import org.apache.spark.sql.connector.expressions.SortOrder;
import org.apache.spark.sql.connector.write.BatchWrite;
import org.apache.spark.sql.connector.write.DataWriterFactory;
import org.apache.spark.sql.connector.write.LogicalWriteInfo;
import org.apache.spark.sql.connector.write.PhysicalWriteInfo;
import org.apache.spark.sql.connector.write.RequiresDistributionAndOrdering;
import org.apache.spark.sql.connector.write.SupportsTruncate;
import org.apache.spark.sql.connector.write.Write;
import org.apache.spark.sql.connector.write.WriteBuilder;
import org.apache.spark.sql.connector.write.WriterCommitMessage;
import org.apache.spark.sql.types.StructType;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * {@code df.write.format("csattention")}: builds one index file per context, layer and KV head of a contexts table
 * ({@link ContextsSchema}). Spark clusters the rows by context and sorts them by head and chunk before the writers
 * see them; the job commit ({@link IndexSet#commit}) makes the new set visible atomically. Mode {@code append} adds
 * heads to the set at the path, {@code overwrite} replaces it; the option {@code mode=errorifexists} (what
 * {@link CSAttention#buildIndexes} passes for its default mode) makes the commit fail when another build committed a
 * set at the path while this one ran.
 */
final class IndexSetWrite implements WriteBuilder, SupportsTruncate, Write, RequiresDistributionAndOrdering {

    private final StructType schema;
    private final String queryId;
    private final String root;
    private final CSAttentionOptions options;
    private final ContextsSchema contexts;
    private final boolean requireEmpty;
    private boolean replace;

    IndexSetWrite(LogicalWriteInfo info, String root) {
        this.schema = info.schema();
        this.queryId = info.queryId();
        this.root = root;
        this.options = CSAttentionOptions.from(SparkSession.active(), info.options().asCaseSensitiveMap());
        this.contexts = ContextsSchema.of(schema, options.binaryFloat16());
        String mode = info.options().get(CSAttention.MODE);
        this.requireEmpty = mode != null && (mode.equalsIgnoreCase("errorifexists") || mode.equalsIgnoreCase("error"));
    }

    @Override
    public WriteBuilder truncate() {
        replace = true;
        return this;
    }

    @Override
    public Write build() {
        return this;
    }

    @Override
    public String description() {
        return "csattention index build into " + root;
    }

    @Override
    public Distribution requiredDistribution() {
        return Distributions.clustered(new Expression[] {Expressions.column(schema.fields()[contexts.contextId()]
                .name())});
    }

    @Override
    public int requiredNumPartitions() {
        return options.partitions();
    }

    @Override
    public SortOrder[] requiredOrdering() {
        List<SortOrder> order = new ArrayList<>();
        for (int ordinal : new int[] {contexts.contextId(), contexts.layer(), contexts.kvHead(), contexts.chunk()}) {
            if (ordinal >= 0) {
                order.add(Expressions.sort(Expressions.column(schema.fields()[ordinal].name()),
                        SortDirection.ASCENDING));
            }
        }
        return order.toArray(new SortOrder[0]);
    }

    @Override
    public BatchWrite toBatch() {
        SparkSession spark = SparkSession.active();
        HadoopConf conf = new HadoopConf(spark.sparkContext().hadoopConfiguration());
        CSAttentionMetrics metrics = new CSAttentionMetrics(spark.sparkContext());
        String jobId = "job-" + queryId;
        return new BatchWrite() {
            @Override
            public DataWriterFactory createBatchWriterFactory(PhysicalWriteInfo info) {
                return new IndexBuildWriter.Factory(contexts, options, conf, root, jobId, metrics);
            }

            @Override
            public void commit(WriterCommitMessage[] messages) {
                List<IndexSet.TaskFiles> tasks = new ArrayList<>();
                for (WriterCommitMessage m : messages) {
                    tasks.add(((IndexBuildWriter.TaskCommit) m).files());
                }
                try {
                    Path path = new Path(root);
                    FileSystem fs = path.getFileSystem(conf.get());
                    Map<String, Long> counters = new java.util.LinkedHashMap<>();
                    counters.put("contextsPrefilled", metrics.contextsPrefilled.value());
                    counters.put("headsBuilt", metrics.headsBuilt.value());
                    IndexSet.commit(fs, path, jobId, tasks, replace, requireEmpty, options.describe(), counters,
                            IndexSet.graceMillis(conf.get()));
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            }

            @Override
            public void abort(WriterCommitMessage[] messages) {
                try {
                    Path path = new Path(root);
                    IndexSet.abort(path.getFileSystem(conf.get()), path, jobId);
                    // tasks of the failed stage still running can write after this: removed as they end
                    AbortedBuildCleanup.watch(spark.sparkContext(), conf, root, jobId);
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            }
        };
    }
}
