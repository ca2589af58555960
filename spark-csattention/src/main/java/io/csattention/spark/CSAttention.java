package io.csattention.spark;

import io.csattention.format.IndexFile;
import io.csattention.format.IndexFileSummary;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.SparkContext;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.broadcast.Broadcast;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.functions;

import java.io.IOException;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * The Java API of the Spark extension, shared by Scala and PySpark users (through the JVM) and by the jobs.
 *
 * <pre>
 * IndexSet.Manifest built = CSAttention.buildIndexes(contexts, "s3a://bucket/indexes", Map.of("sparsity", "0.95"));
 * Dataset&lt;Row&gt; out = CSAttention.decode(queries, "s3a://bucket/indexes", Map.of());
 * out.write().parquet("s3a://bucket/answers");
 * </pre>
 */
public final class CSAttention {

    /** Option of {@link #buildIndexes}: {@code errorifexists} (default), {@code overwrite} or {@code append}. */
    public static final String MODE = "mode";

    private CSAttention() {
    }

    /** {@link #buildIndexes(Dataset, String, Map)} with the index path given as option {@code path}. */
    public static IndexSet.Manifest buildIndexes(Dataset<Row> contexts, Map<String, String> options)
            throws IOException {
        Map<String, String> rest = new TreeMap<>(String.CASE_INSENSITIVE_ORDER);
        rest.putAll(options);
        String path = rest.remove("path");
        if (path == null) {
            throw new IllegalArgumentException("options must include the index path; path=null");
        }
        return buildIndexes(contexts, path, rest);
    }

    /**
     * Builds one index per context, layer and KV head of a tensor-level contexts table (see {@link ContextsSchema}
     * for its columns) and commits them as the index set at {@code indexPath}; returns the committed manifest.
     */
    public static IndexSet.Manifest buildIndexes(Dataset<Row> contexts, String indexPath, Map<String, String> options)
            throws IOException {
        SparkSession spark = contexts.sparkSession();
        Map<String, String> settings = new TreeMap<>(String.CASE_INSENSITIVE_ORDER);
        settings.putAll(options);
        String mode = settings.getOrDefault(MODE, "errorifexists").toLowerCase(Locale.ROOT);
        settings.remove(MODE);
        CSAttentionOptions parsed = CSAttentionOptions.from(spark, settings);
        ContextsSchema.of(contexts.schema(), parsed.binaryFloat16());
        HadoopConf conf = new HadoopConf(spark.sparkContext().hadoopConfiguration());
        Path root = new Path(indexPath);
        FileSystem fs = root.getFileSystem(conf.get());
        String saveMode = switch (mode) {
            case "errorifexists", "error" -> {
                if (IndexSet.latest(fs, root).isPresent()) {
                    throw new IllegalArgumentException("index path already holds an index set (use mode overwrite "
                            + "or append); path=" + indexPath);
                }
                yield "append";
            }
            case "overwrite", "append" -> mode;
            default -> throw new IllegalArgumentException("mode must be errorifexists, overwrite or append; mode="
                    + mode);
        };
        SparkContext sc = spark.sparkContext();
        sc.setJobGroup("csattention-build", "csattention: build indexes into " + indexPath, false);
        try {
            contexts.write().format(CSAttentionDataSource.NAME).options(settings).mode(saveMode).save(indexPath);
        } finally {
            sc.clearJobGroup();
        }
        return IndexSet.require(conf, indexPath);
    }

    /** {@link #decode(Dataset, String, Map, CSAttentionMetrics)} with counters nobody reads. */
    public static Dataset<Row> decode(Dataset<Row> queries, String indexPath, Map<String, String> options)
            throws IOException {
        return decode(queries, indexPath, options, new CSAttentionMetrics(queries.sparkSession().sparkContext()));
    }

    /**
     * Decodes a queries table (see {@link QueriesSchema}) against the index set at {@code indexPath}. Runs one small
     * job now (the distinct contexts of the queries, to broadcast their metadata); the returned Dataset decodes when
     * an action runs, counting into {@code metrics}.
     */
    public static Dataset<Row> decode(Dataset<Row> queries, String indexPath, Map<String, String> options,
                                      CSAttentionMetrics metrics) throws IOException {
        SparkSession spark = queries.sparkSession();
        CSAttentionOptions parsed = CSAttentionOptions.from(spark, options);
        QueriesSchema schema = QueriesSchema.of(queries.schema(), parsed);
        HadoopConf conf = new HadoopConf(spark.sparkContext().hadoopConfiguration());
        IndexSet.Manifest manifest = IndexSet.require(conf, indexPath);
        SparkContext sc = spark.sparkContext();
        sc.setJobDescription("csattention: contexts requested by the queries");
        Set<String> requested = new HashSet<>();
        List<Row> distinct = queries.select(functions.col(queries.schema().fields()[schema.contextId()].name()))
                .distinct().collectAsList();
        sc.setJobDescription(null);
        for (Row r : distinct) {
            requested.add(r.getString(0));
        }
        Map<HeadKey, IndexSet.Entry> entries = new HashMap<>();
        Map<HeadKey, IndexFileSummary> summaries = new HashMap<>();
        long totalBytes = 0;
        FileSystem fs = new Path(indexPath).getFileSystem(conf.get());
        for (IndexSet.Entry e : manifest.heads()) {
            if (!requested.contains(e.contextId())) {
                continue;
            }
            entries.put(e.key(), e);
            Path file = new Path(new Path(indexPath), e.file());
            try (FSDataInputStream in = fs.open(file)) {
                summaries.put(e.key(), IndexFile.readSummary(in, file.toString()));
            }
            totalBytes += e.bytes();
        }
        Map<HeadKey, byte[]> files = null;
        if (totalBytes <= parsed.broadcastThreshold()) {
            files = new HashMap<>();
            for (IndexSet.Entry e : entries.values()) {
                files.put(e.key(), IndexSet.readFile(conf, indexPath, e));
            }
        }
        DecodePlan plan = new DecodePlan(indexPath, parsed, conf, entries, summaries, files);
        Broadcast<DecodePlan> broadcast = JavaSparkContext.fromSparkContext(sc).broadcast(plan);
        return queries.mapPartitions(new DecodePartition(broadcast, schema, metrics), Encoders.row(schema.output()));
    }

    /** The heads of the index set at {@code indexPath}, one row each (the DataSource's read). */
    public static Dataset<Row> describe(SparkSession spark, String indexPath) {
        return spark.read().format(CSAttentionDataSource.NAME).load(indexPath);
    }
}
