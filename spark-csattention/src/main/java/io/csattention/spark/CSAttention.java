package io.csattention.spark;

import io.csattention.device.Backends;
import io.csattention.format.IndexFileSummary;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.SparkContext;
import org.apache.spark.api.java.JavaPairRDD;
import org.apache.spark.api.java.JavaRDD;
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

import scala.Tuple2;

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

    private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(CSAttention.class);

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
        // read now in every mode: a manifest this build must not follow fails before any work is done
        boolean exists = IndexSet.latest(fs, root).isPresent();
        String saveMode = switch (mode) {
            case "errorifexists", "error" -> {
                if (exists) {
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
            contexts.write().format(CSAttentionDataSource.NAME).options(settings).option(MODE, mode).mode(saveMode)
                    .save(indexPath);
        } catch (java.io.UncheckedIOException e) {
            if (e.getCause() instanceof IndexSet.CommitConflict || e.getCause() instanceof IndexSet.ManifestException) {
                throw e.getCause();
            }
            throw e;
        } finally {
            sc.clearJobGroup();
        }
        return IndexSet.require(conf, indexPath);
    }

    /**
     * Builds the index set of a model-level contexts table (context_id, and text string or tokens array&lt;int&gt;):
     * each context is tokenized (text) and prefilled once on the executors by the model at {@code modelPath}
     * ({@link ModelPrefill}), then its layers' and KV heads' tensors are built as a tensor-level table would be.
     * Option {@code tokenizer}: llama2.c's tokenizer.bin, for text with a llama2.c checkpoint. Option {@code device}
     * places the prefills ({@link ModelPrefill}) and the index builds; as the model's heads carry RoPE, which the GPU
     * build does not index, {@code gpu} builds them on the CPU as {@code auto} does (one logged line per head) while
     * their prefill must run on the GPU.
     */
    public static IndexSet.Manifest buildIndexes(Dataset<Row> contexts, String modelPath, String indexPath,
                                                 Map<String, String> options) throws IOException {
        Map<String, String> rest = new TreeMap<>(String.CASE_INSENSITIVE_ORDER);
        rest.putAll(options);
        String tokenizer = rest.remove(ModelPrefill.TOKENIZER);
        Backends.Mode device = CSAttentionOptions.from(contexts.sparkSession(), rest).device();
        if (device == Backends.Mode.GPU) {
            rest.put(CSAttentionOptions.DEVICE, Backends.Mode.AUTO.id());
        }
        return buildIndexes(ModelPrefill.tensors(contexts, modelPath, tokenizer, device), indexPath, rest);
    }

    /**
     * Answers questions about reusable contexts with the model at {@code modelPath}. {@code contexts}: context_id
     * string, and text string or tokens array&lt;int&gt;; {@code questions}: question_id (int or long), context_id, and
     * text or tokens (a question's text is tokenized without BOS: it continues its context). Per context, on the
     * executors, the context is tokenized and prefilled and its index built once, and every question continues a fork
     * of that session ({@link ModelGeneration}). Options: {@code attention} (default csattention),
     * {@code maxNewTokens} (16), {@code temperature} (0: greedy), {@code topP} (0.9), {@code samplingSeed} (42),
     * {@code ignoreEos} (false: stop at the model's end-of-sequence and end-of-turn ids), {@code tokenizer}
     * (llama2.c's tokenizer.bin, for text with a llama2.c checkpoint), {@code onError} (fail, or route: a bad context
     * or question gives error rows), and the index settings of {@link CSAttentionOptions}. The result (lazy) has one
     * row per question: context_id, question_id, attention, generated ids, text (their decoding; null without a
     * tokenizer), prefill_nanos and index_nanos (of the context, shared by its questions), decode_nanos (the
     * question's own steps), and error with onError=route (null on answered rows). Option {@code device} places the
     * context prefills ({@link ModelPrefill}; cpu by default); decode runs on the CPU.
     */
    public static Dataset<Row> generate(Dataset<Row> contexts, Dataset<Row> questions, String modelPath,
                                        Map<String, String> options) {
        SparkSession spark = contexts.sparkSession();
        CSAttentionOptions[] parsed = new CSAttentionOptions[1];
        ModelGeneration.Settings settings = ModelGeneration.Settings.take(options, rest -> {
            parsed[0] = CSAttentionOptions.from(spark, rest);
            return parsed[0].settings();
        });
        boolean route = parsed[0].routeErrors();
        boolean contextText = ModelPrefill.isText(contexts.schema(), ModelPrefill.TABLE);
        TensorColumn.typed(contexts.schema(), ModelPrefill.TABLE, ContextsSchema.CONTEXT_ID,
                org.apache.spark.sql.types.DataTypes.StringType);
        boolean questionText = ModelPrefill.isText(questions.schema(), "questions");
        TensorColumn.typed(questions.schema(), "questions", "question_id",
                org.apache.spark.sql.types.DataTypes.IntegerType, org.apache.spark.sql.types.DataTypes.LongType);
        TensorColumn.typed(questions.schema(), "questions", "context_id",
                org.apache.spark.sql.types.DataTypes.StringType);
        Dataset<Row> grouped = questions
                .select(functions.col("context_id").as("question_context"), functions.struct(
                        functions.col("question_id").cast("long").as("question_id"),
                        (questionText ? functions.lit(null).cast(ModelPrefill.IDS)
                                : functions.col(ModelPrefill.TOKENS).cast(ModelPrefill.IDS)).as(ModelPrefill.TOKENS),
                        (questionText ? functions.col(ModelPrefill.TEXT)
                                : functions.lit(null).cast("string")).as(ModelPrefill.TEXT)).as("question"))
                .groupBy("question_context")
                .agg(functions.array_sort(functions.collect_list("question")).as("questions"));
        Dataset<Row> known = ModelPrefill.inputs(contexts, ContextsSchema.CONTEXT_ID, contextText)
                .withColumn("context_found", functions.lit(true));
        Dataset<Row> joined = grouped
                .join(known, grouped.col("question_context").equalTo(known.col(ContextsSchema.CONTEXT_ID)), "left")
                .select(functions.col("question_context").as("context_id"), functions.col(ModelPrefill.TOKENS),
                        functions.col(ModelPrefill.TEXT), functions.col("context_found"), functions.col("questions"))
                .repartition(functions.col("context_id"));
        return joined.flatMap(new ModelGeneration(modelPath, contextText, questionText, settings, route,
                        parsed[0].device()),
                Encoders.row(ModelGeneration.answers(route)));
    }

    /** {@link #decode(Dataset, String, Map, CSAttentionMetrics)} with counters nobody reads. */
    public static Dataset<Row> decode(Dataset<Row> queries, String indexPath, Map<String, String> options)
            throws IOException {
        return decode(queries, indexPath, options, new CSAttentionMetrics(queries.sparkSession().sparkContext()));
    }

    /**
     * Decodes a queries table (see {@link QueriesSchema}) against the index set at {@code indexPath}. Runs one small
     * job now (the rows per context, layer and head of the queries, to plan the tasks and broadcast the heads'
     * metadata); the returned Dataset decodes when an action runs, counting into {@code metrics}.
     *
     * <p>Planned by head (option {@code decodePlan=byHead}, the default): the rows are shuffled into tasks that each
     * hold the rows of one head, or of a few small heads, at most {@code rowsPerTask} rows ({@link DecodeTasks}), and
     * a task decodes its rows grouped by head, so an executor loads each head once and a task borrows each of its heads
     * once. With {@code preserveOrder=true} (the default) the decoded rows are shuffled back into the input's
     * partitions and order (each row is tagged with its input partition and its place there, so a retried task sends
     * the same rows to the same places); with false they come in task order, grouped by head. {@code decodePlan=asIs}
     * decodes each input partition where it is, in its order, with no shuffle: for input already sorted by head.
     */
    public static Dataset<Row> decode(Dataset<Row> queries, String indexPath, Map<String, String> options,
                                      CSAttentionMetrics metrics) throws IOException {
        SparkSession spark = queries.sparkSession();
        CSAttentionOptions parsed = CSAttentionOptions.from(spark, options);
        QueriesSchema schema = QueriesSchema.of(queries.schema(), parsed);
        if (!parsed.decodeByHead()) {
            Broadcast<DecodePlan> plan = plan(queries, schema, indexPath, parsed);
            return queries.mapPartitions(new DecodePartition(plan, schema, metrics), Encoders.row(schema.output()));
        }
        SparkContext sc = spark.sparkContext();
        String[] names = queries.schema().fieldNames();
        sc.setJobDescription("csattention decode plan: query rows per context, layer and head");
        List<Row> counted;
        try {
            counted = queries.groupBy(functions.col(names[schema.contextId()]), functions.col(names[schema.layer()]),
                    functions.col(names[schema.head()])).count().collectAsList();
        } finally {
            sc.setJobDescription(null);
        }
        Set<String> requested = new HashSet<>();
        for (Row r : counted) {
            if (!r.isNullAt(0)) {
                requested.add(r.getString(0));
            }
        }
        Broadcast<DecodePlan> plan = plan(spark, indexPath, parsed, requested);
        DecodePlan p = plan.value();
        Map<HeadKey, Long> rowsPerHead = new HashMap<>();
        for (Row r : counted) {
            if (r.isNullAt(0) || r.isNullAt(1) || r.isNullAt(2) || r.getInt(2) < 0) {
                continue;
            }
            HeadKey key = new HeadKey(r.getString(0), r.getInt(1), p.kvHead(r.getString(0), r.getInt(1),
                    r.getInt(2)));
            if (p.entries().containsKey(key)) {
                rowsPerHead.merge(key, r.getLong(3), Long::sum);
            }
        }
        for (HeadKey key : new java.util.TreeSet<>(rowsPerHead.keySet())) {
            long need = p.residentBytes(key);
            if (need > parsed.cacheBudgetBytes()) {
                throw new IllegalArgumentException(ExecutorIndexCache.tooLarge(key.toString(), need,
                        parsed.cacheBudgetBytes()));
            }
        }
        DecodeTasks tasks = DecodeTasks.plan(rowsPerHead, parsed.rowsPerTask(), sc.defaultParallelism());
        long contexts = rowsPerHead.keySet().stream().map(HeadKey::contextId).distinct().count();
        String what = "csattention decode: " + tasks.heads() + " heads of " + contexts + " contexts, " + tasks.rows()
                + " rows in " + tasks.tasks() + " tasks";
        LOG.info("{} (at most {} rows a task)", what, tasks.share());
        LOG.debug("tasks by head: {}", tasks.tasksByHead());
        JavaSparkContext jsc = JavaSparkContext.fromSparkContext(sc);
        int partitions = queries.rdd().getNumPartitions();
        DecodePartition stage = new DecodePartition(plan, schema, metrics);
        int contextColumn = schema.contextId();
        int layerColumn = schema.layer();
        int headColumn = schema.head();
        try {
            jsc.setCallSite("csattention decode: query rows to " + tasks.tasks() + " tasks by head");
            JavaPairRDD<Long, Tuple2<Long, Row>> byTask = queries.toJavaRDD()
                    .mapPartitionsWithIndex((partition, rows) -> {
                        DecodePlan local = plan.value();
                        Map<HeadKey, long[]> seen = new HashMap<>();
                        long[] row = {0};
                        return new java.util.Iterator<Tuple2<Long, Tuple2<Long, Row>>>() {
                            @Override
                            public boolean hasNext() {
                                return rows.hasNext();
                            }

                            @Override
                            public Tuple2<Long, Tuple2<Long, Row>> next() {
                                Row r = rows.next();
                                HeadKey key = r.isNullAt(contextColumn) || r.isNullAt(layerColumn)
                                        || r.isNullAt(headColumn) ? null
                                        : new HeadKey(r.getString(contextColumn), r.getInt(layerColumn),
                                        local.kvHead(r.getString(contextColumn), r.getInt(layerColumn),
                                                r.getInt(headColumn)));
                                long nth = key == null ? 0 : seen.computeIfAbsent(key, k -> new long[1])[0]++;
                                long sequence = DecodeTasks.sequence(partition, row[0]++);
                                return new Tuple2<>(tasks.shuffleKey(key, partition, nth),
                                        new Tuple2<>(sequence, r));
                            }
                        };
                    }, true)
                    .mapToPair(t -> t)
                    .repartitionAndSortWithinPartitions(new DecodeTasks.ByTask(tasks.tasks()));
            jsc.setCallSite(what);
            JavaRDD<Tuple2<Long, Row>> decoded = byTask.mapPartitions(rows -> stage.tagged(
                    new MappedIterator<>(rows, Tuple2::_2)));
            decoded.setName(what);
            JavaRDD<Row> out;
            if (parsed.preserveOrder()) {
                // a stage is named by its last RDD: the pairs that leave the decode stage carry its description
                JavaPairRDD<Long, Row> bySequence = decoded.mapToPair(t -> t);
                jsc.setCallSite("csattention decode: rows back in the input's order, " + partitions + " partitions");
                out = bySequence
                        .repartitionAndSortWithinPartitions(new DecodeTasks.ByInputPartition(Math.max(1, partitions)))
                        .values();
            } else {
                out = decoded.map(Tuple2::_2);
            }
            return spark.createDataFrame(out, schema.output());
        } finally {
            jsc.clearCallSite();
        }
    }

    /** An iterator's values through a function, lazily. */
    private record MappedIterator<A, B>(java.util.Iterator<A> in,
                                        org.apache.spark.api.java.function.Function<A, B> f)
            implements java.util.Iterator<B> {
        @Override
        public boolean hasNext() {
            return in.hasNext();
        }

        @Override
        public B next() {
            try {
                return f.call(in.next());
            } catch (RuntimeException e) {
                throw e;
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        }
    }

    /**
     * The broadcast metadata of a decode: runs one small job (the distinct contexts of the queries) and reads the
     * summaries of their heads (see {@link #plan(SparkSession, String, CSAttentionOptions, Set)}).
     */
    static Broadcast<DecodePlan> plan(Dataset<Row> queries, QueriesSchema schema, String indexPath,
                                      CSAttentionOptions parsed) throws IOException {
        SparkSession spark = queries.sparkSession();
        SparkContext sc = spark.sparkContext();
        sc.setJobDescription("csattention: contexts requested by the queries");
        Set<String> requested = new HashSet<>();
        List<Row> distinct;
        try {
            distinct = queries.select(functions.col(queries.schema().fields()[schema.contextId()].name()))
                    .distinct().collectAsList();
        } finally {
            sc.setJobDescription(null);
        }
        for (Row r : distinct) {
            requested.add(r.getString(0));
        }
        return plan(spark, indexPath, parsed, requested);
    }

    /**
     * The broadcast metadata of a decode of the {@code requested} contexts: the summaries of their heads; the index
     * files themselves travel in the broadcast when they are at most {@code broadcastThreshold} bytes together, else
     * each executor reads the heads it needs.
     */
    static Broadcast<DecodePlan> plan(SparkSession spark, String indexPath, CSAttentionOptions parsed,
                                      Set<String> requested) throws IOException {
        HadoopConf conf = new HadoopConf(spark.sparkContext().hadoopConfiguration());
        IndexSet.Manifest manifest = IndexSet.require(conf, indexPath);
        SparkContext sc = spark.sparkContext();
        Map<HeadKey, IndexSet.Entry> entries = new HashMap<>();
        Map<HeadKey, IndexFileSummary> summaries = new HashMap<>();
        long totalBytes = 0;
        FileSystem fs = new Path(indexPath).getFileSystem(conf.get());
        for (IndexSet.Entry e : manifest.heads()) {
            if (!requested.contains(e.contextId())) {
                continue;
            }
            entries.put(e.key(), e);
            summaries.put(e.key(), IndexSet.readSummary(fs, indexPath, e));
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
        return JavaSparkContext.fromSparkContext(sc).broadcast(plan);
    }

    /**
     * The one line of the bad query row that failed an action of a decode (this class's, the DataSource's or
     * {@code csattention_decode}'s), from what the action threw on the driver; null when it failed otherwise. A bad
     * row fails its task once, not retried, and Spark then reports the line inside its own message, without the
     * row's exception as a cause (see {@link QueryCheck}).
     */
    public static String badQueryRow(Throwable failure) {
        return QueryCheck.badRow(failure);
    }

    /** The heads of the index set at {@code indexPath}, one row each (the DataSource's read). */
    public static Dataset<Row> describe(SparkSession spark, String indexPath) {
        return spark.read().format(CSAttentionDataSource.NAME).load(indexPath);
    }
}
