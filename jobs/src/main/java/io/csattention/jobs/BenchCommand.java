package io.csattention.jobs;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.csattention.baseline.AttentionMethod;
import io.csattention.baseline.BlockedFullAttention;
import io.csattention.core.BlockDecoder;
import io.csattention.core.BudgetPlan;
import io.csattention.core.CSAttentionSettings;
import io.csattention.core.FloatMatrix;
import io.csattention.eval.Metrics;
import io.csattention.core.KeySelector;
import io.csattention.core.KeyValueCache;
import io.csattention.kernel.Kernels;
import io.csattention.kernel.VectorKernels;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * Decode speed, recall and memory of every method, side by side in one run: sweeps context length, sparsity,
 * methods and thread counts on synthetic heads (or one head from .npy files), and reports ratios. Sparse methods
 * decode through {@link BlockDecoder} and {@code full} through {@link BlockedFullAttention}, with the same kernels
 * and threads. Writes {@code bench.csv}, {@code bench.json} and three PNG charts to {@code --out}; with
 * {@code --json} the last line on stdout is a JSON summary for csattention at 95% sparsity, single-threaded.
 */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = "Benchmark decode speed, recall and index memory of csattention against quest, keycluster, "
                + "oracle and a blocked SIMD full attention; ratios measured in one run.")
final class BenchCommand implements Callable<Integer> {

    static final double SUMMARY_SPARSITY = 0.95;
    static final long WARM_UP_MILLIS = 300;
    private static final ObjectMapper JSON = new ObjectMapper();

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = "--tokens", split = ",", paramLabel = "N", defaultValue = "8192,32768,65536,131072",
            description = "Context lengths (default: ${DEFAULT-VALUE}).")
    List<Integer> tokens;

    @Option(names = "--sparsity", split = ",", paramLabel = "S", defaultValue = "0.90,0.95,0.98",
            description = "Sparsities (default: ${DEFAULT-VALUE}).")
    List<Double> sparsities;

    @Option(names = "--methods", split = ",", paramLabel = "M",
            defaultValue = "csattention,quest,keycluster,oracle,full",
            description = "Methods (default: ${DEFAULT-VALUE}).")
    List<String> methods;

    @Option(names = "--threads", split = ",", paramLabel = "T",
            description = "Thread counts (default: 1 and all available processors).")
    List<Integer> threads;

    @Option(names = "--query-count", paramLabel = "M", defaultValue = "64",
            description = "Decode queries per context (default: ${DEFAULT-VALUE}).")
    int queryCount;

    @Option(names = "--head-dim", paramLabel = "d", defaultValue = "128",
            description = "Head dimension of synthetic data (default: ${DEFAULT-VALUE}).")
    int headDim;

    @Option(names = "--repeats", defaultValue = "3",
            description = "Timed repeats per measurement; the median is kept (default: ${DEFAULT-VALUE}).")
    int repeats;

    @Option(names = "--seed", defaultValue = "" + CSAttentionSettings.DEFAULT_SEED,
            description = "Seed of the synthetic data and of the index (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--keys", paramLabel = "K.npy", description = "Keys [N,d] (with --values, --prefill-queries, "
            + "--queries: benchmark this head instead of synthetic ones).")
    Path keys;

    @Option(names = "--values", paramLabel = "V.npy")
    Path values;

    @Option(names = "--prefill-queries", paramLabel = "PQ.npy")
    Path prefillQueries;

    @Option(names = "--queries", paramLabel = "Q.npy")
    Path queries;

    @picocli.CommandLine.Mixin
    BuildFlags build;

    @picocli.CommandLine.Mixin
    DecodeFlags decode;

    @Option(names = "--full-query-block", paramLabel = "B",
            defaultValue = "" + BlockedFullAttention.DEFAULT_QUERY_BLOCK,
            description = "Queries per block of the full baseline: each block streams K and V once (default: "
                    + "${DEFAULT-VALUE}; 1 streams them once per query).")
    int fullQueryBlock;

    @Option(names = "--out", paramLabel = "DIR", defaultValue = "csattention-bench",
            description = "Output directory (default: ${DEFAULT-VALUE}).")
    Path out;

    @Option(names = "--json", description = "Print the JSON summary as the last line on stdout.")
    boolean json;

    @Override
    public Integer call() throws IOException {
        validate();
        PrintWriter stdout = spec.commandLine().getOut();
        VectorKernels kernels = Kernels.preferred();
        List<Integer> threadCounts = threadCounts();
        List<AttentionMethod> parsed = methods.stream().map(AttentionMethod::parse).distinct().toList();
        CSAttentionSettings base = settings();
        List<BenchRow> rows = new ArrayList<>();
        List<String> sources = new ArrayList<>();
        boolean npy = keys != null;
        List<Integer> contexts = npy ? List.of(-1) : tokens;
        for (int n : contexts) {
            BenchData data = npy ? BenchData.fromNpy(keys, values, prefillQueries, queries)
                    : BenchData.synthetic(n, headDim, queryCount, seed);
            sources.add(data.source());
            stdout.printf(Locale.ROOT, "context %d tokens, d=%d, %d queries, %s, kernels=%s%n", data.tokens(),
                    data.dim(), data.queries().rows(), data.source(), kernels.name());
            stdout.flush();
            rows.addAll(new ContextBench(kernels, data, base, sparsities, parsed, threadCounts, repeats,
                    fullQueryBlock, stdout).run());
        }
        BenchReport report = new BenchReport(rows, kernels.name(), sources);
        ObjectNode summary = report.summary(SUMMARY_SPARSITY);
        summary.put("full_query_block", fullQueryBlock);
        ObjectNode document = JSON.createObjectNode();
        document.set("machine", machine(kernels));
        document.set("summary", summary);
        ArrayNode array = document.putArray("rows");
        rows.forEach(r -> array.add(r.toJson(JSON)));
        OutputDir.write(out, dir -> {
            report.writeCsv(dir.resolve("bench.csv"));
            JSON.writerWithDefaultPrettyPrinter().writeValue(dir.resolve("bench.json").toFile(), document);
            BenchCharts.write(dir, rows, SUMMARY_SPARSITY);
        });
        stdout.println();
        stdout.print(report.table());
        stdout.println("wrote " + out.resolve("bench.csv") + ", bench.json, latency_vs_context.png, "
                + "recall_vs_sparsity.png, speedup_vs_full.png");
        if (json) {
            stdout.println(JSON.writeValueAsString(summary));
        }
        stdout.flush();
        return 0;
    }

    private void validate() {
        OutputDir.check(out);
        boolean anyNpy = keys != null || values != null || prefillQueries != null || queries != null;
        if (anyNpy && (keys == null || values == null || prefillQueries == null || queries == null)) {
            throw new IllegalArgumentException("--keys, --values, --prefill-queries and --queries must be given "
                    + "together; missing=" + String.join(",", missingNpy()));
        }
        if (!anyNpy) {
            int longest = tokens.stream().mapToInt(Integer::intValue).max().orElse(0);
            // keys, values and prefill queries of the longest context, its copy in the cache, the queries' outputs
            long floats = (long) longest * headDim;
            NumericOptions.requireHeap("bench", "--tokens x --head-dim", floats,
                    4L * (5 * floats + 4L * queryCount * headDim));
        }
    }

    private List<String> missingNpy() {
        List<String> missing = new ArrayList<>();
        if (keys == null) {
            missing.add("--keys");
        }
        if (values == null) {
            missing.add("--values");
        }
        if (prefillQueries == null) {
            missing.add("--prefill-queries");
        }
        if (queries == null) {
            missing.add("--queries");
        }
        return missing;
    }

    private List<Integer> threadCounts() {
        if (threads != null) {
            return threads.stream().distinct().toList();
        }
        int all = Runtime.getRuntime().availableProcessors();
        return all > 1 ? List.of(1, all) : List.of(1);
    }

    /** csattention's settings from the build and decode flags (the one mapping, {@link Flags}), seeded by --seed. */
    private CSAttentionSettings settings() {
        java.util.Map<String, String> options = new java.util.LinkedHashMap<>();
        java.util.Map<String, String> typed = new java.util.LinkedHashMap<>();
        build.into(options, typed);
        decode.into(options, typed);
        return Flags.parse(options, typed).settings().withSeed(seed);
    }

    private static ObjectNode machine(VectorKernels kernels) {
        ObjectNode node = JSON.createObjectNode();
        node.put("processors", Runtime.getRuntime().availableProcessors());
        node.put("max_heap_mib", Runtime.getRuntime().maxMemory() >> 20);
        node.put("java", System.getProperty("java.vm.name") + " " + System.getProperty("java.version"));
        node.put("os", System.getProperty("os.name") + " " + System.getProperty("os.arch"));
        node.put("kernels", kernels.name());
        node.put("note", "decode times are medians of --repeats runs on a shared machine; compare ratios only");
        return node;
    }

    /** Everything measured on one context: full once, then every sparsity and method. */
    private static final class ContextBench {
        private final VectorKernels kernels;
        private final BenchData data;
        private final CSAttentionSettings base;
        private final List<Double> sparsities;
        private final List<AttentionMethod> methods;
        private final List<Integer> threadCounts;
        private final int repeats;
        private final int fullQueryBlock;
        private final PrintWriter log;
        private final KeyValueCache cache;
        private final int n;
        private final int d;

        ContextBench(VectorKernels kernels, BenchData data, CSAttentionSettings base, List<Double> sparsities,
                     List<AttentionMethod> methods, List<Integer> threadCounts, int repeats, int fullQueryBlock,
                     PrintWriter log) {
            this.kernels = kernels;
            this.data = data;
            this.base = base;
            this.sparsities = sparsities;
            this.methods = methods;
            this.threadCounts = threadCounts;
            this.repeats = repeats;
            this.fullQueryBlock = fullQueryBlock;
            this.log = log;
            this.cache = KeyValueCache.of(data.keys(), data.values());
            this.n = data.tokens();
            this.d = data.dim();
        }

        List<BenchRow> run() {
            int m = data.queries().rows();
            double kvBytesPerToken = 2.0 * Float.BYTES * d;
            int allThreads = threadCounts.get(threadCounts.size() - 1);
            FloatMatrix fullOutput;
            try (BlockedFullAttention full = new BlockedFullAttention(kernels, allThreads, fullQueryBlock,
                    BlockedFullAttention.DEFAULT_KEY_BLOCK)) {
                fullOutput = full.attend(cache, data.queries());
            }
            Map<AttentionMethod, KeySelector> shared = new LinkedHashMap<>();
            Map<AttentionMethod, Double> sharedBuild = new LinkedHashMap<>();
            List<BenchRow> rows = new ArrayList<>();
            for (double sparsity : sparsities) {
                CSAttentionSettings settings = base.withSparsity(sparsity);
                BudgetPlan plan = settings.plan(n);
                Map<AttentionMethod, KeySelector> selectors = new LinkedHashMap<>();
                Map<AttentionMethod, Double> buildMillis = new LinkedHashMap<>();
                for (AttentionMethod method : methods) {
                    if (method == AttentionMethod.FULL) {
                        continue;
                    }
                    // csattention's lists depend on the sparsity (their default length is 2.4 times the budget)
                    boolean perSparsity = method == AttentionMethod.CSATTENTION;
                    if (!perSparsity && shared.containsKey(method)) {
                        selectors.put(method, shared.get(method));
                        buildMillis.put(method, sharedBuild.get(method));
                        continue;
                    }
                    long start = System.nanoTime();
                    KeySelector selector = method.newSelector(kernels, cache, data.prefillQueries(), settings, data.rope());
                    double millis = (System.nanoTime() - start) / 1e6;
                    selectors.put(method, selector);
                    buildMillis.put(method, millis);
                    if (!perSparsity) {
                        shared.put(method, selector);
                        sharedBuild.put(method, millis);
                    }
                    log.printf(Locale.ROOT, "  %-11s index built in %.0f ms (sparsity %.2f)%n", method.id(), millis,
                            sparsity);
                    log.flush();
                }
                // the reference of recall: the timed oracle's own selections when oracle is measured
                int[][] oracle = null;
                if (!selectors.containsKey(AttentionMethod.ORACLE)) {
                    try (BlockDecoder decoder = BlockDecoder.withThreads(kernels, allThreads)) {
                        oracle = decoder.decode(cache, AttentionMethod.ORACLE.newSelector(kernels, cache,
                                data.prefillQueries(), settings), plan, data.queries()).selections();
                    }
                }
                for (int t : threadCounts) {
                    rows.addAll(measure(sparsity, plan, selectors, buildMillis, t, oracle, fullOutput,
                            kvBytesPerToken));
                }
            }
            return rows;
        }

        /**
         * Times every method at one sparsity and thread count. Repeats are interleaved (repeat r of every method,
         * then repeat r + 1) so that slow drifts of a shared machine's load hit all methods alike.
         */
        private List<BenchRow> measure(double sparsity, BudgetPlan plan, Map<AttentionMethod, KeySelector> selectors,
                                       Map<AttentionMethod, Double> buildMillis, int threads, int[][] oracle,
                                       FloatMatrix fullOutput, double kvBytesPerToken) {
            int m = data.queries().rows();
            FloatMatrix queries = data.queries();
            FloatMatrix warmUpQueries = firstRows(queries, Math.min(m, Math.max(8, fullQueryBlock)));
            Map<AttentionMethod, double[]> times = new LinkedHashMap<>();
            Map<AttentionMethod, BlockDecoder.Result> results = new LinkedHashMap<>();
            try (BlockedFullAttention full = new BlockedFullAttention(kernels, threads, fullQueryBlock,
                    BlockedFullAttention.DEFAULT_KEY_BLOCK);
                 BlockDecoder decoder = BlockDecoder.withThreads(kernels, threads)) {
                for (AttentionMethod method : methods) {
                    times.put(method, new double[repeats]);
                    if (method == AttentionMethod.FULL) {
                        warmUp(() -> full.attend(cache, warmUpQueries));
                    } else {
                        KeySelector selector = selectors.get(method);
                        warmUp(() -> decoder.decode(cache, selector, plan, warmUpQueries));
                    }
                }
                for (int r = 0; r < repeats; r++) {
                    for (AttentionMethod method : methods) {
                        long start = System.nanoTime();
                        if (method == AttentionMethod.FULL) {
                            full.attend(cache, queries);
                        } else {
                            results.put(method, decoder.decode(cache, selectors.get(method), plan, queries));
                        }
                        times.get(method)[r] = (System.nanoTime() - start) / 1e3 / m;
                    }
                }
            }
            int[][] reference = oracle != null ? oracle : results.get(AttentionMethod.ORACLE).selections();
            List<BenchRow> rows = new ArrayList<>();
            for (AttentionMethod method : methods) {
                double micros = Metrics.quantile(times.get(method), 0.5);
                BenchRow row;
                if (method == AttentionMethod.FULL) {
                    row = new BenchRow(n, d, m, sparsity, method.id(), threads, n, micros, 1, 1, 0, 0, 0,
                            kvBytesPerToken);
                } else {
                    BlockDecoder.Result result = results.get(method);
                    double[] recall = Metrics.recalls(result.selections(), reference);
                    row = new BenchRow(n, d, m, sparsity, method.id(), threads, plan.budget(), micros, Metrics.mean(recall),
                            Metrics.quantile(recall, 0.1), Metrics.meanRelativeError(result.outputs(), fullOutput),
                            buildMillis.get(method), (double) selectors.get(method).indexBytes() / n,
                            kvBytesPerToken);
                }
                rows.add(row);
                log.printf(Locale.ROOT, "  %-11s threads=%d %10.1f us/query  sparsity=%.2f  recall=%.3f  error=%.4f"
                                + "  index=%.0f B/token%n", method.id(), threads, micros, sparsity, row.recall(),
                        row.error(), row.indexBytesPerToken());
            }
            log.flush();
            return rows;
        }
    }

    /**
     * Runs {@code work} until the JIT has compiled the vector loops (the Vector API is orders of magnitude slower
     * before C2 compiles it, and compiling competes for the same cores): at least three runs and
     * {@value #WARM_UP_MILLIS} ms, then until the last run is within 15% of the best one, for at most four times
     * {@value #WARM_UP_MILLIS} ms.
     */
    static void warmUp(Runnable work) {
        long start = System.nanoTime();
        long best = Long.MAX_VALUE;
        for (int i = 0; ; i++) {
            long runStart = System.nanoTime();
            work.run();
            long took = System.nanoTime() - runStart;
            best = Math.min(best, took);
            long elapsed = System.nanoTime() - start;
            boolean settled = i >= 2 && elapsed >= WARM_UP_MILLIS * 1_000_000L && took <= best * 1.15;
            if (settled || elapsed >= 4 * WARM_UP_MILLIS * 1_000_000L) {
                return;
            }
        }
    }

    static FloatMatrix firstRows(FloatMatrix matrix, int rows) {
        return matrix.rows(0, rows);
    }
}
