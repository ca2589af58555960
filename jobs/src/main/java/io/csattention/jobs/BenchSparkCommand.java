package io.csattention.jobs;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.csattention.core.BlockDecoder;
import io.csattention.core.BudgetPlan;
import io.csattention.core.CSAttentionSelector;
import io.csattention.core.FloatMatrix;
import io.csattention.core.KeyValueCache;
import io.csattention.format.IndexFile;
import io.csattention.format.IndexedHead;
import io.csattention.spark.CSAttention;
import io.csattention.spark.CSAttentionMetrics;
import io.csattention.spark.CSAttentionOptions;
import org.apache.spark.api.java.function.FlatMapFunction;
import org.apache.spark.api.java.function.MapPartitionsFunction;
import org.apache.spark.broadcast.Broadcast;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code bench-spark}: the decode job at scale against the library, side by side in one run. A generated index set
 * ({@code --contexts} x {@code --layers} x {@code --kv-heads} heads of {@code --tokens} keys from the project's
 * long-context generator, {@link BenchData#synthetic}) is built by the build job; a queries table of {@code --rows}
 * rows is written twice, in mixed order (row i holds item (a i + b) mod n, a coprime to n, so consecutive rows
 * belong to different heads) and sorted by head; then the decode runs cold (the first decode of this JVM: its
 * executor cache is empty and the JIT cold), warm on the mixed table and warm on the sorted table; the library
 * decodes the same rows head by head ({@link BlockDecoder} with the session's cores as threads, the heads already
 * loaded). Spark's timed decodes write to Spark's {@code noop} sink, so both sides do the same work: every output row
 * computed, nothing stored. Then the decode job writes the first rows of every head to Parquet, and those are
 * checked against the library's outputs.
 */
@Command(name = "bench-spark", mixinStandardHelpOptions = true,
        description = "Spark decode at scale against the library in one run: queries/s cold and warm, mixed and "
                + "sorted input, the Spark/library ratio, index loads, peak memory. Last stdout line: a JSON "
                + "summary.")
final class BenchSparkCommand implements Callable<Integer> {

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = "--contexts", defaultValue = "4", description = "Contexts. Default: ${DEFAULT-VALUE}.")
    int contexts;

    @Option(names = "--layers", defaultValue = "2", description = "Layers per context. Default: ${DEFAULT-VALUE}.")
    int layers;

    @Option(names = "--kv-heads", defaultValue = "2", description = "KV heads per layer. Default: ${DEFAULT-VALUE}.")
    int kvHeads;

    @Option(names = "--tokens", defaultValue = "32768", description = "Keys per head. Default: ${DEFAULT-VALUE}.")
    int tokens;

    @Option(names = "--head-dim", defaultValue = "128", description = "Head dimension. Default: ${DEFAULT-VALUE}.")
    int dim;

    @Option(names = "--rows", defaultValue = "1000000",
            description = "Query rows of the table (rounded down to a multiple of the heads). Default: "
                    + "${DEFAULT-VALUE}.")
    long rows;

    @Option(names = "--distinct-queries", defaultValue = "2048",
            description = "Distinct query vectors per head; the table repeats them. Default: ${DEFAULT-VALUE}.")
    int distinct;

    @Option(names = "--sparsity", defaultValue = "0.95", description = "Index sparsity. Default: ${DEFAULT-VALUE}.")
    double sparsity;

    @Option(names = "--seed", defaultValue = "7", description = "Seed of the generated heads. Default: "
            + "${DEFAULT-VALUE}.")
    long seed;

    @Option(names = "--master", defaultValue = "local[2]", description = "Spark master. Default: ${DEFAULT-VALUE}.")
    String master;

    @Option(names = "--query-files", defaultValue = "8",
            description = "Parquet files of each queries table. Default: ${DEFAULT-VALUE}.")
    int queryFiles;

    @Option(names = "--option", paramLabel = "KEY=VALUE",
            description = "A decode option of conf/csattention-defaults.conf (repeatable), e.g. --option "
                    + "cacheBudget=300m.")
    Map<String, String> decodeOptions = new LinkedHashMap<>();

    @Option(names = "--work", required = true,
            description = "Folder for the generated tables, the index set and the output: new, or one an earlier run "
                    + "with the same generation options wrote (its tables and index set are reused, e.g. for a run "
                    + "with a smaller heap).")
    Path work;

    @Option(names = "--out", description = "Folder for bench-spark.json (default: --work).")
    Path out;

    private static final StructType CONTEXTS = new StructType()
            .add("context_id", DataTypes.StringType, false)
            .add("layer", DataTypes.IntegerType, false)
            .add("kv_head", DataTypes.IntegerType, false)
            .add("chunk", DataTypes.IntegerType, false)
            .add("head_dim", DataTypes.IntegerType, false)
            .add("keys", DataTypes.createArrayType(DataTypes.FloatType, false))
            .add("values", DataTypes.createArrayType(DataTypes.FloatType, false))
            .add("prefill_queries", DataTypes.createArrayType(DataTypes.FloatType, false))
            .add("prefill_positions", DataTypes.createArrayType(DataTypes.LongType, false))
            .add("rope_base", DataTypes.DoubleType, false)
            .add("rope_style", DataTypes.StringType, false);

    private static final StructType QUERIES = new StructType()
            .add("query_id", DataTypes.LongType, false)
            .add("context_id", DataTypes.StringType, false)
            .add("layer", DataTypes.IntegerType, false)
            .add("head", DataTypes.IntegerType, false)
            .add("query", DataTypes.createArrayType(DataTypes.FloatType, false));

    /** The generation options of the tables and index set in --work, for a later run to reuse them. */
    private static final String INPUTS = "bench-spark-inputs.txt";
    /** Tokens per row of the contexts table. */
    private static final int CHUNK = 4096;
    /** Rows of each head whose Spark output is compared with the library's. */
    private static final int CHECKED_PER_HEAD = 64;

    @Override
    public Integer call() throws Exception {
        PrintWriter o = spec.commandLine().getOut();
        int heads = contexts * layers * kvHeads;
        long perHead = rows / heads;
        if (perHead < 1) {
            throw new IllegalArgumentException("--rows must be at least the number of heads " + heads + "; --rows="
                    + rows);
        }
        long n = perHead * heads;
        String inputs = String.format(Locale.ROOT, "contexts=%d layers=%d kv-heads=%d tokens=%d head-dim=%d rows=%d "
                + "distinct-queries=%d sparsity=%s seed=%d query-files=%d", contexts, layers, kvHeads, tokens, dim, n,
                distinct, sparsity, seed, queryFiles);
        Path inputsFile = work.resolve(INPUTS);
        boolean reuse = Files.exists(work);
        if (reuse && !(Files.isRegularFile(inputsFile) && Files.readString(inputsFile).strip().equals(inputs))) {
            throw new IllegalArgumentException("--work must not exist yet, or hold the tables and index set of an "
                    + "earlier bench-spark run with the same generation options (" + inputs + "); --work=" + work);
        }
        Path results = out == null ? work : out;
        NumericOptions.requireHeap("bench-spark", "the distinct queries and one head's rows",
                (long) heads * distinct * dim, 4L * ((long) heads * distinct * dim + 4L * perHead * dim
                        + 6L * tokens * dim));
        Map<String, String> options = new LinkedHashMap<>(decodeOptions);
        options.put(CSAttentionOptions.SPARSITY, Double.toString(sparsity));
        options.put(CSAttentionOptions.SEED, Long.toString(seed));
        CSAttentionOptions parsed = CSAttentionOptions.parse(options);

        SparkSession spark = SparkSession.builder().master(master).appName("csattention bench-spark")
                .config("spark.ui.enabled", "false").getOrCreate();
        spark.sparkContext().setLogLevel("WARN");
        int cores = spark.sparkContext().defaultParallelism();
        try {
            Files.createDirectories(work);
            o.printf(Locale.ROOT, "bench-spark: %d heads (%d contexts x %d layers x %d KV heads) of %d keys, d=%d, "
                    + "sparsity %.2f; %d query rows (%d per head, %d distinct); %s (%d cores); %s %s%n", heads,
                    contexts, layers, kvHeads, tokens, dim, sparsity, n, perHead, distinct, master, cores,
                    System.getProperty("java.vm.name"), System.getProperty("java.version"));

            String index = work.resolve("index").toString();
            String mixed = work.resolve("queries-mixed").toString();
            String sorted = work.resolve("queries-sorted").toString();
            float[][] queries = new float[heads][];
            for (int h = 0; h < heads; h++) {
                queries[h] = BenchData.synthetic(tokens, dim, distinct, headSeed(seed, h)).queries().data();
            }
            if (reuse) {
                o.printf(Locale.ROOT, "reusing the index set and the queries tables in %s (%s)%n", work, INPUTS);
            } else {
                long t = System.nanoTime();
                String contextsPath = work.resolve("contexts").toString();
                spark.range(0, heads, 1, Math.min(heads, cores * 4))
                        .flatMap(new ContextChunks(contexts, layers, kvHeads, tokens, dim, distinct, seed),
                                Encoders.row(CONTEXTS))
                        .write().parquet(contextsPath);
                CSAttention.buildIndexes(spark.read().parquet(contextsPath), index, options);
                o.printf(Locale.ROOT, "generated and built the index set in %.1f s%n", seconds(t));
                Broadcast<float[][]> shared = org.apache.spark.api.java.JavaSparkContext.fromSparkContext(
                        spark.sparkContext()).broadcast(queries);
                t = System.nanoTime();
                writeQueries(spark, shared, mixed, n, perHead, coprimeStride(n), 12_345 % n);
                writeQueries(spark, shared, sorted, n, perHead, 1, 0);
                o.printf(Locale.ROOT, "wrote the mixed and the sorted queries tables (%d rows each, %.0f MB) in "
                        + "%.1f s%n", n, bytes(Path.of(mixed)) / 1e6, seconds(t));
                Files.writeString(inputsFile, inputs + "\n");
            }

            List<Run> runs = new ArrayList<>();
            runs.add(sparkRun(spark, "spark cold, mixed", mixed, index, options));
            Library library = library(index, parsed, queries, perHead, cores);
            runs.add(library.run);
            runs.add(sparkRun(spark, "spark warm, mixed", mixed, index, options));
            runs.add(sparkRun(spark, "spark warm, sorted", sorted, index, options));
            Path checkedDir = work.resolve("checked");
            if (Files.exists(checkedDir)) {
                try (var old = Files.walk(checkedDir)) {
                    for (Path f : old.sorted(java.util.Comparator.reverseOrder()).toList()) {
                        Files.delete(f);
                    }
                }
            }
            String written = checkedDir.toString();
            int keep = (int) Math.min(CHECKED_PER_HEAD, perHead);
            CSAttention.decode(spark.read().parquet(mixed)
                            .filter(org.apache.spark.sql.functions.col("query_id").mod(perHead).lt(keep)), index,
                    options).write().parquet(written);
            double maxDiff = compare(spark, written, library, perHead);

            o.println();
            o.printf(Locale.ROOT, "%-32s %10s %12s %8s %12s %12s%n", "run", "seconds", "queries/s", "loads",
                    "cache hits", "peak RSS MB");
            for (Run r : runs) {
                o.printf(Locale.ROOT, "%-32s %10.1f %12.0f %8s %12s %12.0f%n", r.name, r.seconds, n / r.seconds,
                        r.counters == null ? "-" : r.counters.get("indexesLoaded"),
                        r.counters == null ? "-" : r.counters.get("cacheHits"), r.peakRss / 1e6);
            }
            double libraryS = library.run.seconds;
            Run coldMixed = runs.get(0);
            Run warmMixed = runs.get(2);
            Run warmSorted = runs.get(3);
            o.printf(Locale.ROOT, "library: %d heads loaded one at a time in %.1f s (not in its decode time)%n", heads,
                    library.loadSeconds);
            o.printf(Locale.ROOT, "spark/library warm: mixed %.2fx, sorted %.2fx; cold/warm mixed %.2fx; max |spark -"
                    + " library| over %d checked rows %.3g%n", warmMixed.seconds / libraryS,
                    warmSorted.seconds / libraryS, coldMixed.seconds / warmMixed.seconds,
                    (long) CHECKED_PER_HEAD * heads, maxDiff);

            ObjectNode json = new ObjectMapper().createObjectNode();
            json.put("heads", heads);
            json.put("tokens", tokens);
            json.put("rows", n);
            json.put("master", master);
            json.put("library_queries_per_s", n / libraryS);
            for (Run r : runs) {
                if (r.counters == null) {
                    continue;
                }
                ObjectNode node = json.putObject(r.key());
                node.put("seconds", r.seconds);
                node.put("queries_per_s", n / r.seconds);
                node.put("peak_rss_bytes", r.peakRss);
                r.counters.forEach(node::put);
            }
            json.put("spark_library_ratio_warm_mixed", warmMixed.seconds / libraryS);
            json.put("spark_library_ratio_warm_sorted", warmSorted.seconds / libraryS);
            json.put("cold_warm_ratio_mixed", coldMixed.seconds / warmMixed.seconds);
            json.put("max_abs_diff_vs_library", maxDiff);
            Files.createDirectories(results);
            Files.writeString(results.resolve("bench-spark.json"), json.toPrettyString() + "\n");
            o.println(json.toString());
            return 0;
        } finally {
            spark.stop();
        }
    }

    private static double seconds(long start) {
        return (System.nanoTime() - start) / 1e9;
    }

    static long headSeed(long seed, int head) {
        return seed * 1_000_003L + head;
    }

    /** The smallest stride above n / 2 + 7 that is coprime to n, so that i -> (a i + b) mod n is a permutation. */
    static long coprimeStride(long n) {
        long a = n / 2 + 7;
        while (gcd(a % Math.max(n, 1), n) != 1) {
            a++;
        }
        return a % Math.max(n, 1);
    }

    private static long gcd(long a, long b) {
        return b == 0 ? a : gcd(b, a % b);
    }

    /** Head h of the index set: context h / (layers kv), layer, KV head (query head = KV head: group size 1). */
    record HeadName(String contextId, int layer, int kvHead) {
        static HeadName of(int h, int layers, int kvHeads) {
            return new HeadName("ctx-" + h / (layers * kvHeads), h / kvHeads % layers, h % kvHeads);
        }
    }

    /** The contexts table's rows of one generated head, {@link #CHUNK} tokens each. */
    private record ContextChunks(int contexts, int layers, int kvHeads, int tokens, int dim, int distinct, long seed)
            implements FlatMapFunction<Long, Row> {
        @Override
        public Iterator<Row> call(Long head) {
            int h = head.intValue();
            BenchData data = BenchData.synthetic(tokens, dim, distinct, headSeed(seed, h));
            HeadName name = HeadName.of(h, layers, kvHeads);
            long[] positions = data.rope().prefillPositions();
            List<Row> out = new ArrayList<>();
            int prefillRows = data.prefillQueries().rows();
            int chunks = (tokens + CHUNK - 1) / CHUNK;
            for (int c = 0; c < chunks; c++) {
                int from = c * CHUNK;
                int to = Math.min(tokens, from + CHUNK);
                int pFrom = (int) ((long) prefillRows * c / chunks);
                int pTo = (int) ((long) prefillRows * (c + 1) / chunks);
                out.add(RowFactory.create(name.contextId(), name.layer(), name.kvHead(), c, dim,
                        slice(data.keys(), from, to), slice(data.values(), from, to),
                        slice(data.prefillQueries(), pFrom, pTo),
                        java.util.Arrays.copyOfRange(positions, pFrom, pTo), data.rope().base(),
                        data.rope().style().name().toLowerCase(Locale.ROOT)));
            }
            return out.iterator();
        }
    }

    private static float[] slice(FloatMatrix m, int from, int to) {
        return java.util.Arrays.copyOfRange(m.data(), from * m.cols(), to * m.cols());
    }

    /**
     * Writes the queries table: row i holds item (stride i + offset) mod n (stride i stays below 2^63 for the row
     * counts --rows allows); item p is row p % perHead of head p / perHead, its query_id p.
     */
    private void writeQueries(SparkSession spark, Broadcast<float[][]> queries, String path, long n, long perHead,
                              long stride, long offset) {
        spark.range(0, n, 1, queryFiles)
                .mapPartitions(new QueryRows(queries, dim, distinct, layers, kvHeads, n, perHead, stride, offset),
                        Encoders.row(QUERIES))
                .write().parquet(path);
    }

    /** The queries table's rows of a range of row numbers. */
    private record QueryRows(Broadcast<float[][]> queries, int dim, int distinct, int layers, int kvHeads, long n,
                             long perHead, long stride, long offset) implements MapPartitionsFunction<Long, Row> {
        @Override
        public Iterator<Row> call(Iterator<Long> ids) {
            float[][] q = queries.value();
            return new Iterator<>() {
                @Override
                public boolean hasNext() {
                    return ids.hasNext();
                }

                @Override
                public Row next() {
                    long p = (stride * ids.next() + offset) % n;
                    int h = (int) (p / perHead);
                    int j = (int) (p % perHead % distinct);
                    HeadName name = HeadName.of(h, layers, kvHeads);
                    return RowFactory.create(p, name.contextId(), name.layer(), name.kvHead(),
                            java.util.Arrays.copyOfRange(q[h], j * dim, (j + 1) * dim));
                }
            };
        }
    }

    /** One timed run: wall seconds, the job's counters (null for the library) and the peak resident bytes. */
    private record Run(String name, double seconds, Map<String, Long> counters, long peakRss) {
        String key() {
            return name.replace("spark ", "").replace(", ", "_");
        }
    }

    private static Run sparkRun(SparkSession spark, String name, String queries, String index,
                                Map<String, String> options) throws IOException {
        CSAttentionMetrics metrics = new CSAttentionMetrics(spark.sparkContext());
        PeakMemory.reset();
        long start = System.nanoTime();
        Dataset<Row> decoded = CSAttention.decode(spark.read().parquet(queries), index, options, metrics);
        decoded.write().format("noop").mode("overwrite").save();
        return new Run(name, seconds(start), metrics.values(), PeakMemory.residentBytes());
    }

    /** The library's decode of the same rows: its time, its load time, and the outputs of the checked rows. */
    private record Library(Run run, double loadSeconds, float[][] checked) {
    }

    private Library library(String index, CSAttentionOptions parsed, float[][] queries, long perHead, int threads)
            throws IOException {
        int heads = queries.length;
        Map<String, Path> files = indexFiles(Path.of(index));
        float[][] checked = new float[heads][];
        long loadNanos = 0;
        long decodeNanos = 0;
        PeakMemory.reset();
        // one head resident at a time, as an executor with a small cache budget holds them; only decode time counts
        try (BlockDecoder decoder = BlockDecoder.withThreads(parsed.kernels(), threads)) {
            for (int h = 0; h < heads; h++) {
                long loadStart = System.nanoTime();
                HeadName name = HeadName.of(h, layers, kvHeads);
                Path file = files.get(name.contextId() + "/" + name.layer() + "/" + name.kvHead());
                KeyValueCache cache;
                CSAttentionSelector selector;
                try (InputStream in = Files.newInputStream(file)) {
                    IndexedHead head = IndexFile.read(new java.io.BufferedInputStream(in, 1 << 20), file.toString());
                    cache = head.cache();
                    selector = new CSAttentionSelector(parsed.kernels(), head.index(), cache,
                            parsed.settings().rescoreFactor());
                }
                float[] rowsOfHead = new float[Math.toIntExact(perHead * dim)];
                for (int j = 0; j < perHead; j++) {
                    System.arraycopy(queries[h], j % distinct * dim, rowsOfHead, j * dim, dim);
                }
                BudgetPlan plan = parsed.settings().plan(cache.size());
                long start = System.nanoTime();
                loadNanos += start - loadStart;
                BlockDecoder.Result r = decoder.decode(cache, selector, plan,
                        new FloatMatrix((int) perHead, dim, rowsOfHead));
                decodeNanos += System.nanoTime() - start;
                int keep = (int) Math.min(CHECKED_PER_HEAD, perHead);
                checked[h] = java.util.Arrays.copyOf(r.outputs().data(), keep * dim);
            }
        }
        double loadSeconds = loadNanos / 1e9;
        return new Library(new Run("library", decodeNanos / 1e9, null, PeakMemory.residentBytes()), loadSeconds,
                checked);
    }

    /** The index files of the committed set at {@code root}, by "context/layer/kv head". */
    private static Map<String, Path> indexFiles(Path root) throws IOException {
        io.csattention.spark.IndexSet.Manifest manifest = io.csattention.spark.IndexSet.latest(
                org.apache.hadoop.fs.FileSystem.getLocal(new org.apache.hadoop.conf.Configuration()),
                new org.apache.hadoop.fs.Path(root.toUri())).orElseThrow(() -> new IOException(
                "no committed index set at " + root));
        Map<String, Path> files = new LinkedHashMap<>();
        for (io.csattention.spark.IndexSet.Entry e : manifest.heads()) {
            files.put(e.contextId() + "/" + e.layer() + "/" + e.kvHead(), root.resolve(e.file()));
        }
        return files;
    }

    /** The largest |spark - library| over the checked rows (the first rows of each head). */
    private double compare(SparkSession spark, String written, Library library, long perHead) {
        int keep = (int) Math.min(CHECKED_PER_HEAD, perHead);
        List<Row> rows = spark.read().parquet(written)
                .filter(org.apache.spark.sql.functions.col("query_id").mod(perHead).lt(keep))
                .select("query_id", "output").collectAsList();
        if (rows.size() != keep * library.checked.length) {
            throw new IllegalStateException("the output must hold " + keep * library.checked.length
                    + " checked rows; rows=" + rows.size());
        }
        double max = 0;
        for (Row r : rows) {
            long p = r.getLong(0);
            int h = (int) (p / perHead);
            int j = (int) (p % perHead);
            List<Float> output = r.getList(1);
            for (int i = 0; i < dim; i++) {
                max = Math.max(max, Math.abs(output.get(i) - library.checked[h][j * dim + i]));
            }
        }
        return max;
    }

    private static long bytes(Path dir) throws IOException {
        try (var files = Files.walk(dir)) {
            return files.filter(Files::isRegularFile).mapToLong(f -> f.toFile().length()).sum();
        }
    }

    /** The peak resident set of this process since the last reset (Linux's VmHWM); 0 where unknown. */
    static final class PeakMemory {
        private PeakMemory() {
        }

        static void reset() {
            try {
                Files.writeString(Path.of("/proc/self/clear_refs"), "5");
            } catch (IOException | UnsupportedOperationException e) {
                // not Linux, or not allowed: the peak then covers the whole process
            }
        }

        static long residentBytes() {
            try {
                for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                    if (line.startsWith("VmHWM:")) {
                        return 1024L * Long.parseLong(line.replaceAll("[^0-9]", ""));
                    }
                }
            } catch (IOException | NumberFormatException e) {
                return 0;
            }
            return 0;
        }
    }
}
