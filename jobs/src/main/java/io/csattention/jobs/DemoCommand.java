package io.csattention.jobs;

import io.csattention.baseline.AttentionMethod;
import io.csattention.core.Attention;
import io.csattention.core.BlockDecoder;
import io.csattention.core.BudgetPlan;
import io.csattention.core.CSAttentionSelector;
import io.csattention.core.FloatMatrix;
import io.csattention.core.KeySelector;
import io.csattention.core.KeyValueCache;
import io.csattention.eval.Metrics;
import io.csattention.format.IndexFile;
import io.csattention.format.IndexedHead;
import io.csattention.kernel.VectorKernels;
import io.csattention.model.LlamaConfig;
import io.csattention.model.LlamaModel;
import io.csattention.model.ModelFiles;
import io.csattention.spark.CSAttention;
import io.csattention.spark.CSAttentionMetrics;
import io.csattention.spark.CSAttentionOptions;
import io.csattention.spark.IndexSet;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.Path;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.stream.IntStream;

/**
 * {@code demo}: the whole pipeline on a small seeded sample, with no arguments and no network. Writes the contexts
 * and queries as Parquet, builds the index set, decodes, writes the output Parquet, then checks every row against
 * full attention and the oracle selection computed with the core library, and times the same decode done by the
 * library directly.
 */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = {"Runs build-index and decode on a seeded synthetic tensor-level sample, then builds "
                + "model-level indexes and generates answers with the bundled stories260K model, under a temporary "
                + "directory, and prints rows, contexts, recall and token agreement against full attention, and "
                + "throughput."})
final class DemoCommand implements Callable<Integer> {

    static final StructType CONTEXTS = new StructType()
            .add("context_id", DataTypes.StringType)
            .add("layer", DataTypes.IntegerType)
            .add("kv_head", DataTypes.IntegerType)
            .add("head_dim", DataTypes.IntegerType)
            .add("keys", DataTypes.BinaryType)
            .add("values", DataTypes.BinaryType)
            .add("prefill_queries", DataTypes.BinaryType);

    static final StructType QUERIES = new StructType()
            .add("query_id", DataTypes.LongType)
            .add("context_id", DataTypes.StringType)
            .add("layer", DataTypes.IntegerType)
            .add("head", DataTypes.IntegerType)
            .add("query", DataTypes.createArrayType(DataTypes.FloatType, false));

    @Spec
    CommandSpec spec;

    @Mixin
    SparkJob.Logging logging;

    @Option(names = "--out", description = "Directory for the Parquet tables and the index set (default: a new "
            + "temporary directory).")
    java.nio.file.Path out;

    @Option(names = "--contexts", defaultValue = "4", description = "Contexts (default ${DEFAULT-VALUE}).")
    int contexts;

    @Option(names = "--layers", defaultValue = "2", description = "Layers per context (default ${DEFAULT-VALUE}).")
    int layers;

    @Option(names = "--kv-heads", defaultValue = "2", description = "KV heads per layer (default ${DEFAULT-VALUE}).")
    int kvHeads;

    @Option(names = "--tokens", defaultValue = "4096", description = "Tokens per context (default ${DEFAULT-VALUE}).")
    int tokens;

    @Option(names = "--head-dim", defaultValue = "64", description = "Head dimension (default ${DEFAULT-VALUE}).")
    int dim;

    @Option(names = "--queries", defaultValue = "64", description = "Decode queries per head (default "
            + "${DEFAULT-VALUE}).")
    int queries;

    @Option(names = "--sparsity", defaultValue = "0.95", description = "Sparsity (default ${DEFAULT-VALUE}).")
    double sparsity;

    @Option(names = "--seed", defaultValue = "2026", description = "Seed of the sample (default ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--model-contexts", defaultValue = "3", description = "Contexts the bundled stories260K model "
            + "writes for the model-level part (default ${DEFAULT-VALUE}).")
    int modelContexts;

    @Option(names = "--model-tokens", defaultValue = "256", description = "Tokens per model-level context, BOS "
            + "included (default ${DEFAULT-VALUE}).")
    int modelTokens;

    @Option(names = "--questions", defaultValue = "2", description = "Questions per model-level context (default "
            + "${DEFAULT-VALUE}).")
    int questionsPerContext;

    @Option(names = "--question-tokens", defaultValue = "8", description = "Tokens per question (default "
            + "${DEFAULT-VALUE}).")
    int questionTokens;

    @Option(names = "--new-tokens", defaultValue = "16", description = "Tokens generated per question (default "
            + "${DEFAULT-VALUE}).")
    int newTokens;

    @Option(names = "--model-sparsity", defaultValue = "0.75", description = "Sparsity of the model-level part "
            + "(default ${DEFAULT-VALUE}).")
    double modelSparsity;

    @Override
    public Integer call() throws Exception {
        // every head of the sample is generated on the driver: keys, values and prefill queries
        long floats = (long) contexts * layers * kvHeads * tokens * dim;
        NumericOptions.requireHeap("demo", "--contexts x --layers x --kv-heads x --tokens x --head-dim", floats,
                4L * 4 * floats);
        Map<String, String> options = new HashMap<>();
        options.put(CSAttentionOptions.SPARSITY, Double.toString(sparsity));
        options.put(CSAttentionOptions.WITH_SELECTED, "true");
        CSAttentionOptions parsed = CSAttentionOptions.parse(options);
        java.nio.file.Path dir = out != null ? Files.createDirectories(out)
                : Files.createTempDirectory("csattention-demo");
        PrintWriter stdout = spec.commandLine().getOut();
        SparkSession spark = SparkJob.session("csattention demo", logging);
        try {
            tensorLevel(spark, dir, stdout, options, parsed);
            modelLevel(spark, dir, stdout);
            return 0;
        } catch (Exception e) {
            throw SparkJob.unwrap(e);
        } finally {
            spark.stop();
        }
    }

    /**
     * The tensor-level part: a synthetic sample written as contexts and queries tables, built and decoded through
     * Spark, its recall and error against the oracle and full attention, and the library's direct decode time.
     */
    private void tensorLevel(SparkSession spark, java.nio.file.Path dir, PrintWriter stdout,
                             Map<String, String> options, CSAttentionOptions parsed) throws Exception {
        DemoContexts data = new DemoContexts(tokens, dim, seed);
        String contextsPath = dir.resolve("contexts.parquet").toString();
        String queriesPath = dir.resolve("queries.parquet").toString();
        String indexPath = dir.resolve("index").toString();
        String decodedPath = dir.resolve("decoded.parquet").toString();
        Map<String, DemoContexts.Head> heads = new HashMap<>();
        for (int c = 0; c < contexts; c++) {
            for (int l = 0; l < layers; l++) {
                for (int h = 0; h < kvHeads; h++) {
                    heads.put(c + "/" + l + "/" + h, data.head(c, l, h, queries));
                }
            }
        }
        writeSample(spark, data, contexts, layers, kvHeads, queries, contextsPath, queriesPath);

        long start = System.nanoTime();
        IndexSet.Manifest manifest = CSAttention.buildIndexes(spark.read().parquet(contextsPath), indexPath,
                options);
        double buildSeconds = (System.nanoTime() - start) / 1e9;

        CSAttentionMetrics metrics = new CSAttentionMetrics(spark.sparkContext());
        start = System.nanoTime();
        CSAttention.decode(spark.read().parquet(queriesPath), indexPath, options, metrics).write()
                .parquet(decodedPath);
        double decodeSeconds = (System.nanoTime() - start) / 1e9;
        start = System.nanoTime();
        CSAttention.decode(spark.read().parquet(queriesPath), indexPath, options).write()
                .parquet(dir.resolve("decoded-again.parquet").toString());
        double warmSeconds = (System.nanoTime() - start) / 1e9;

        List<Row> decoded = spark.read().parquet(decodedPath).collectAsList();
        Quality quality = quality(decoded, heads, parsed);
        double directSeconds = directDecodeSeconds(spark, indexPath, manifest, heads, parsed);

        long indexBytes = manifest.heads().stream().mapToLong(IndexSet.Entry::bytes).sum();
        long kvBytes = manifest.heads().stream().mapToLong(e -> 8L * e.keys() * e.dim()).sum();
        int total = decoded.size();
        stdout.printf("csattention demo: synthetic tensor-level sample, %d contexts x %d layers x %d KV heads, "
                + "N=%d, d=%d, sparsity %.2f (budget %d keys)%n", contexts, layers, kvHeads, tokens, dim,
                sparsity, parsed.settings().plan(tokens).budget());
        stdout.printf("  build-index : %d heads of %d contexts in %.2f s; index files %d bytes (KV inside: %d); "
                + "counters %s%n", manifest.heads().size(), contexts, buildSeconds, indexBytes, kvBytes,
                manifest.counters());
        double inTask = decoded.stream().mapToLong(r -> r.<Long>getAs("decode_nanos")).sum() / 1e9;
        double inTaskWarm = spark.read().parquet(dir.resolve("decoded-again.parquet").toString())
                .selectExpr("sum(decode_nanos)").first().getLong(0) / 1e9;
        stdout.printf("  decode      : %d rows in %.2f s = %.0f queries/s (Spark job: Parquet in, Parquet out; "
                + "in-task decode time %.3f s summed over rows); run again with the cache warm: %.2f s = %.0f "
                + "queries/s (in-task %.3f s)%n", total, decodeSeconds, total / decodeSeconds, inTask, warmSeconds,
                total / warmSeconds, inTaskWarm);
        stdout.printf("  library     : same queries decoded directly in %.3f s = %.0f queries/s; Spark/library "
                + "time ratio %.1f (warm run)%n", directSeconds, total / directSeconds,
                warmSeconds / directSeconds);
        stdout.printf("  recall      : mean %.3f, p10 %.3f of the oracle top-budget set%n", quality.meanRecall,
                quality.p10Recall);
        stdout.printf("  error       : output relative L2 error vs full attention mean %.4f, p90 %.4f%n",
                quality.meanError, quality.p90Error);
        Map<String, Long> decodeCounters = new java.util.LinkedHashMap<>(metrics.values());
        decodeCounters.remove("contextsPrefilled");
        decodeCounters.remove("headsBuilt");
        stdout.printf("  counters    : %s%n", decodeCounters);
        stdout.printf("  output      : %s (rows %d), index set %s%n", decodedPath, total, indexPath);
    }

    /** Writes the sample's contexts and queries tables, generated on the executors (one task per head). */
    static void writeSample(SparkSession spark, DemoContexts data, int contexts, int layers, int kvHeads, int queries,
                            String contextsPath, String queriesPath) {
        int headCount = contexts * layers * kvHeads;
        int perHead = queries;
        int layerCount = layers;
        int kvHeadCount = kvHeads;
        int headDim = data.dim;
        var ids = spark.range(0, headCount, 1, Math.min(headCount, spark.sparkContext().defaultParallelism()));
        ids.flatMap((org.apache.spark.api.java.function.FlatMapFunction<Long, Row>) i -> {
            int h = (int) (i % kvHeadCount);
            int l = (int) (i / kvHeadCount % layerCount);
            int c = (int) (i / kvHeadCount / layerCount);
            DemoContexts.Head head = data.head(c, l, h, perHead);
            return List.of(RowFactory.create("context-" + c, l, h, headDim, bytes(head.keys()),
                    bytes(head.values()), bytes(head.prefillQueries()))).iterator();
        }, org.apache.spark.sql.Encoders.row(CONTEXTS)).write().parquet(contextsPath);
        ids.flatMap((org.apache.spark.api.java.function.FlatMapFunction<Long, Row>) i -> {
            int h = (int) (i % kvHeadCount);
            int l = (int) (i / kvHeadCount % layerCount);
            int c = (int) (i / kvHeadCount / layerCount);
            DemoContexts.Head head = data.head(c, l, h, perHead);
            List<Row> rows = new ArrayList<>(perHead);
            for (int q = 0; q < perHead; q++) {
                rows.add(RowFactory.create(i * perHead + q, "context-" + c, l, h, head.queries().row(q)));
            }
            return rows.iterator();
        }, org.apache.spark.sql.Encoders.row(QUERIES)).write().parquet(queriesPath);
    }

    /**
     * The model-level part: contexts and questions written by the bundled stories260K model, indexes built from a
     * prefill on the executors, and answers generated with csattention and with full attention, compared token by
     * token.
     */
    private void modelLevel(SparkSession spark, java.nio.file.Path dir, PrintWriter stdout) throws java.io.IOException {
        java.nio.file.Path modelFile = ModelContexts.extractBundledModel(dir);
        java.nio.file.Path tokenizerFile = ModelContexts.writeStandInTokenizer(dir);
        LlamaModel model = ModelFiles.load(modelFile);
        io.csattention.model.Tokenizer tokenizer = io.csattention.model.Tokenizer.readLlama2c(tokenizerFile,
                model.config().vocabSize());
        LlamaConfig config = model.config();
        // text adds the space SentencePiece puts in front of the context and of each question
        model.checkLength((long) modelTokens + questionTokens + newTokens + 2);
        List<int[]> contextTokens = ModelContexts.sample(model, modelContexts, modelTokens, seed);
        List<List<int[]>> questionTokenLists = ModelContexts.questionSamples(model, modelContexts,
                questionsPerContext, questionTokens, seed);
        String modelContextsPath = dir.resolve("model-contexts.parquet").toString();
        String questionsPath = dir.resolve("questions.parquet").toString();
        ModelContexts.contexts(spark, contextTokens, tokenizer).write().parquet(modelContextsPath);
        ModelContexts.questions(spark, questionTokenLists, tokenizer).write().parquet(questionsPath);
        var contextsTable = spark.read().parquet(modelContextsPath);
        var questionsTable = spark.read().parquet(questionsPath);
        String modelIndexPath = dir.resolve("model-index").toString();
        long start = System.nanoTime();
        Map<String, String> modelOptions = Map.of(CSAttentionOptions.SPARSITY, Double.toString(modelSparsity));
        CSAttentionOptions modelParsed = CSAttentionOptions.parse(modelOptions);
        Map<String, String> withTokenizer = new HashMap<>(modelOptions);
        withTokenizer.put(io.csattention.spark.ModelPrefill.TOKENIZER, tokenizerFile.toString());
        IndexSet.Manifest manifest = CSAttention.buildIndexes(contextsTable, modelFile.toString(), modelIndexPath,
                withTokenizer);
        double buildSeconds = (System.nanoTime() - start) / 1e9;
        long indexBytes = manifest.heads().stream().mapToLong(IndexSet.Entry::bytes).sum();
        stdout.printf("model-level: bundled stories260K (%d layers x %d KV heads, head dim %d), %d contexts x %d "
                        + "tokens written by the model (BOS, then seeded samples), %d questions x %d tokens each, as "
                        + "text tables tokenized on the executors (stand-in vocabulary %s: the model's own is not "
                        + "bundled)%n", config.layers(), config.kvHeads(), config.headSize(), modelContexts,
                modelTokens, questionsPerContext, questionTokens, tokenizerFile.getFileName());
        stdout.printf("  build-index : %d heads of %d contexts (prefill on the executors, once per context) in %.2f "
                + "s; index files %d bytes; counters %s%n", manifest.heads().size(), modelContexts, buildSeconds,
                indexBytes, manifest.counters());

        Map<String, String> generation = new HashMap<>(withTokenizer);
        generation.put("maxNewTokens", Integer.toString(newTokens));
        String answersPath = dir.resolve("answers.parquet").toString();
        start = System.nanoTime();
        CSAttention.generate(contextsTable, questionsTable, modelFile.toString(), generation).write()
                .parquet(answersPath);
        double sparseSeconds = (System.nanoTime() - start) / 1e9;
        generation.put("attention", "full");
        String fullPath = dir.resolve("answers-full.parquet").toString();
        start = System.nanoTime();
        CSAttention.generate(contextsTable, questionsTable, modelFile.toString(), generation).write()
                .parquet(fullPath);
        double fullSeconds = (System.nanoTime() - start) / 1e9;

        Map<Long, List<Integer>> full = answersById(spark, fullPath);
        generation.put("attention", "oracle");
        String oraclePath = dir.resolve("answers-oracle.parquet").toString();
        CSAttention.generate(contextsTable, questionsTable, modelFile.toString(), generation).write()
                .parquet(oraclePath);
        Agreement sparse = Agreement.of(answersById(spark, answersPath), full);
        Agreement oracle = Agreement.of(answersById(spark, oraclePath), full);
        stdout.printf("  generate    : %d answers x %d new tokens; csattention (sparsity %.2f, budget %d of %d "
                        + "context keys) %.2f s, full attention %.2f s (Spark jobs: prefill + index once per context, "
                        + "a fork per question)%n", sparse.answers(), newTokens, modelSparsity,
                modelParsed.settings().plan(modelTokens).budget(), modelTokens, sparseSeconds, fullSeconds);
        stdout.printf("  agreement   : csattention %s; oracle top-budget keys (the ceiling at this budget) %s%n",
                sparse, oracle);
        int answerRows = sparse.answers();
        Row first = spark.read().parquet(answersPath).orderBy("question_id").first();
        stdout.printf("  text        : question %d of %s -> \"%s\"%n", first.<Long>getAs("question_id"),
                first.<String>getAs("context_id"), first.<String>getAs("text"));
        stdout.printf("  answers     : %s (rows %d), full attention's in %s; inputs %s and %s, model %s, index set "
                + "%s%n", answersPath, answerRows, fullPath, modelContextsPath, questionsPath, modelFile,
                modelIndexPath);
    }

    private static Map<Long, List<Integer>> answersById(SparkSession spark, String path) {
        Map<Long, List<Integer>> out = new HashMap<>();
        for (Row r : spark.read().parquet(path).collectAsList()) {
            out.put(r.getAs("question_id"), r.getList(r.fieldIndex("generated")));
        }
        return out;
    }

    /** Generated tokens equal to full attention's at the same step, answers equal throughout, agreeing prefixes. */
    record Agreement(int agreeing, int tokens, int identical, int answers, double meanPrefix) {

        static Agreement of(Map<Long, List<Integer>> answers, Map<Long, List<Integer>> full) {
            int agreeing = 0;
            int tokens = 0;
            int identical = 0;
            long prefixes = 0;
            for (Map.Entry<Long, List<Integer>> e : answers.entrySet()) {
                List<Integer> generated = e.getValue();
                List<Integer> exact = full.get(e.getKey());
                int prefix = -1;
                for (int i = 0; i < generated.size(); i++) {
                    tokens++;
                    if (generated.get(i).equals(exact.get(i))) {
                        agreeing++;
                    } else if (prefix < 0) {
                        prefix = i;
                    }
                }
                prefixes += prefix < 0 ? generated.size() : prefix;
                identical += generated.equals(exact) ? 1 : 0;
            }
            return new Agreement(agreeing, tokens, identical, answers.size(),
                    (double) prefixes / Math.max(answers.size(), 1));
        }

        @Override
        public String toString() {
            return String.format(java.util.Locale.ROOT, "%d of %d tokens equal to full attention's (%.1f%%), %d of %d "
                    + "answers identical, mean agreeing prefix %.1f", agreeing, tokens,
                    100.0 * agreeing / Math.max(tokens, 1), identical, answers, meanPrefix);
        }
    }

    static byte[] bytes(FloatMatrix m) {
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(4 * m.rows() * m.cols())
                .order(java.nio.ByteOrder.LITTLE_ENDIAN);
        b.asFloatBuffer().put(m.data(), 0, m.rows() * m.cols());
        return b.array();
    }

    record Quality(double meanRecall, double p10Recall, double meanError, double p90Error) {
    }

    /** Recall of each row's selected ids against the oracle set, and its output's error against full attention. */
    private static Quality quality(List<Row> decoded, Map<String, DemoContexts.Head> heads,
                                   CSAttentionOptions options) {
        VectorKernels kernels = options.kernels();
        Map<String, KeyValueCache> caches = new HashMap<>();
        Map<String, KeySelector> oracles = new HashMap<>();
        double[] recalls = new double[decoded.size()];
        double[] errors = new double[decoded.size()];
        for (int r = 0; r < decoded.size(); r++) {
            Row row = decoded.get(r);
            String key = row.<String>getAs("context_id").substring("context-".length()) + "/" + row.getAs("layer")
                    + "/" + row.getAs("kv_head");
            DemoContexts.Head head = heads.get(key);
            KeyValueCache cache = caches.computeIfAbsent(key, k -> KeyValueCache.of(head.keys(), head.values()));
            KeySelector oracle = oracles.computeIfAbsent(key, k -> AttentionMethod.ORACLE.newSelector(kernels, cache,
                    head.prefillQueries(), options.settings()));
            long id = row.getAs("query_id");
            int perHead = (int) (id % head.queries().rows());
            float[] q = head.queries().row(perHead);
            BudgetPlan plan = options.settings().plan(cache.size());
            int[] best = oracle.select(q, 0, plan);
            float[] full = new float[q.length];
            Attention.attend(kernels, q, 0, cache, IntStream.range(0, cache.size()).toArray(), full, 0);
            int[] selected = row.getList(row.fieldIndex("selected_ids")).stream()
                    .mapToInt(v -> ((Number) v).intValue()).toArray();
            recalls[r] = Metrics.recall(selected, best);
            List<Float> output = row.getList(row.fieldIndex("output"));
            float[] actual = new float[output.size()];
            for (int c = 0; c < actual.length; c++) {
                actual[c] = output.get(c);
            }
            errors[r] = Metrics.relativeError(actual, 0, full, 0, full.length);
        }
        return new Quality(Metrics.mean(recalls), Metrics.quantile(recalls, 0.1), Metrics.mean(errors),
                Metrics.quantile(errors, 0.9));
    }

    /** Seconds the library takes to decode the same queries with the committed indexes, on all cores. */
    private static double directDecodeSeconds(SparkSession spark, String indexPath, IndexSet.Manifest manifest,
                                              Map<String, DemoContexts.Head> heads, CSAttentionOptions options)
            throws java.io.IOException {
        VectorKernels kernels = options.kernels();
        List<CSAttentionSelector> selectors = new ArrayList<>();
        List<KeyValueCache> caches = new ArrayList<>();
        List<FloatMatrix> queries = new ArrayList<>();
        org.apache.hadoop.conf.Configuration conf = spark.sparkContext().hadoopConfiguration();
        for (IndexSet.Entry e : manifest.heads()) {
            Path file = new Path(new Path(indexPath), e.file());
            IndexedHead head;
            try (FSDataInputStream in = file.getFileSystem(conf).open(file)) {
                head = IndexFile.read(in, file.toString(), file.getFileSystem(conf).getFileStatus(file).getLen());
            }
            KeyValueCache cache = head.cache();
            caches.add(cache);
            selectors.add(new CSAttentionSelector(kernels, head.index(), cache, options.settings().rescoreFactor()));
            queries.add(heads.get(e.contextId().substring("context-".length()) + "/" + e.layer() + "/"
                    + e.kvHead()).queries());
        }
        long start = System.nanoTime();
        try (BlockDecoder decoder = BlockDecoder.withThreads(kernels, Runtime.getRuntime().availableProcessors())) {
            for (int h = 0; h < selectors.size(); h++) {
                decoder.decode(caches.get(h), selectors.get(h), options.settings().plan(caches.get(h).size()),
                        queries.get(h));
            }
        }
        return (System.nanoTime() - start) / 1e9;
    }
}
