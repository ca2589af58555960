package io.csattention.jobs;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.csattention.baseline.AttentionMethod;
import io.csattention.core.CSAttentionSettings;
import io.csattention.core.KeyValueCache;
import io.csattention.model.Generation;
import io.csattention.model.LlamaConfig;
import io.csattention.model.LlamaModel;
import io.csattention.model.Sampler;
import io.csattention.model.Session;
import io.csattention.model.SyntheticModel;
import io.csattention.model.WeightMatrix;
import org.jfree.chart.ChartFactory;
import org.jfree.chart.ChartUtils;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.plot.PlotOrientation;
import org.jfree.data.category.DefaultCategoryDataset;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.stream.IntStream;

/**
 * {@code bench-model}: model-level speed on a model of a published shape with random weights
 * ({@link SyntheticModel}), every ratio measured side by side in one run: the read bandwidth of the weights (the
 * decode limit), prefill, single-sequence decode, batched decode, and the end-to-end long-context table (one shared
 * context, its questions answered in one batch, full attention against csattention).
 */
@Command(name = "bench-model", mixinStandardHelpOptions = true,
        description = "Model-level benchmark on a model-shaped set of random weights: prefill tokens/s and GFLOP/s, "
                + "decode ms/token against the measured bandwidth limit, batched decode tokens/s, and answers/s "
                + "over a long shared context with full attention and csattention. Last stdout line: a JSON "
                + "summary.")
final class BenchModelCommand implements Callable<Integer> {

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = "--shape", defaultValue = "small",
            description = "Model shape: llama32-1b or small. Default: ${DEFAULT-VALUE}.")
    String shape;

    @Option(names = "--quant", defaultValue = "q8_0",
            description = "Quantization mix: q8_0, q4_k_m or q5_k_m. Default: ${DEFAULT-VALUE}.")
    String quant;

    @Option(names = "--layers", description = "Transformer blocks (default: the shape's).")
    Integer layers;

    @Option(names = "--prefill-tokens", defaultValue = "256",
            description = "Tokens of the prefill measurement. Default: ${DEFAULT-VALUE}.")
    int prefillTokens;

    @Option(names = "--decode-tokens", defaultValue = "16",
            description = "Timed single-sequence decode steps. Default: ${DEFAULT-VALUE}.")
    int decodeTokens;

    @Option(names = "--batches", split = ",", defaultValue = "1,4,16,64",
            description = "Batch sizes of the batched decode. Default: ${DEFAULT-VALUE}.")
    int[] batches;

    @Option(names = "--batch-new-tokens", defaultValue = "8",
            description = "Tokens each sequence of a batch generates. Default: ${DEFAULT-VALUE}.")
    int batchNewTokens;

    @Option(names = "--context-tokens", split = ",", defaultValue = "8192",
            description = "Context lengths of the end-to-end table. Default: ${DEFAULT-VALUE}.")
    int[] contextTokens;

    @Option(names = "--questions", defaultValue = "16",
            description = "Questions per context, decoded as one batch. Default: ${DEFAULT-VALUE}.")
    int questions;

    @Option(names = "--new-tokens", defaultValue = "64",
            description = "Tokens generated per question. Default: ${DEFAULT-VALUE}.")
    int newTokens;

    @Option(names = "--sparsity", split = ",", defaultValue = "0.90,0.95,0.98",
            description = "csattention sparsities of the end-to-end table. Default: ${DEFAULT-VALUE}.")
    double[] sparsities;

    @Option(names = "--sparse-methods", split = ",", defaultValue = "csattention,csattention_group",
            description = "Sparse methods of the end-to-end table: csattention (a selection per query head) and "
                    + "csattention_group (one per KV head for its group). Default: ${DEFAULT-VALUE}.")
    List<String> sparseMethods;

    @Option(names = "--seed", defaultValue = "42", description = "Weights and tokens. Default: ${DEFAULT-VALUE}.")
    long seed;

    @Option(names = "--kv-precision", defaultValue = "f16", paramLabel = "f16|bf16|f32",
            description = "How the KV cache stores keys and values. Default: ${DEFAULT-VALUE}.")
    String kvPrecision;

    @Option(names = "--out", defaultValue = "csattention-bench-model",
            description = "Directory for summary.json and the PNG charts (new or empty). Default: ${DEFAULT-VALUE}.")
    Path out;

    /** Tokens of each question's prompt (after the shared context). */
    private static final int QUESTION_TOKENS = 8;
    /** The context whose decode time stands for everything but attention. */
    private static final int SHORT_CONTEXT = 64;
    /**
     * Untimed decode steps before the timed ones: the one-token products run a kernel the prefill barely calls, and
     * C2 compiles it while the first steps run (two were too few: some runs timed the profiled tier-3 code).
     */
    private static final int DECODE_WARMUP = 8;

    @Override
    public Integer call() throws IOException {
        PrintWriter o = spec.commandLine().getOut();
        SyntheticModel.Shape s;
        SyntheticModel.Quant q;
        KeyValueCache.Precision kv;
        try {
            kv = KeyValueCache.Precision.parse(kvPrecision);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--kv-precision must be one of f16, bf16, f32; kv-precision="
                    + kvPrecision);
        }
        try {
            s = SyntheticModel.Shape.parse(shape);
            q = SyntheticModel.Quant.parse(quant);
        } catch (IllegalArgumentException e) {
            // the flags' names, not the library's words
            throw new IllegalArgumentException("--" + e.getMessage().replace("; ", "; --"));
        }
        List<AttentionMethod> sparse = new ArrayList<>();
        for (String name : sparseMethods) {
            AttentionMethod method = AttentionMethod.CSATTENTION.id().equalsIgnoreCase(name.trim())
                    ? AttentionMethod.CSATTENTION
                    : AttentionMethod.CSATTENTION_GROUP.id().equalsIgnoreCase(name.trim())
                    ? AttentionMethod.CSATTENTION_GROUP : null;
            if (method == null) {
                throw new IllegalArgumentException("--sparse-methods must name csattention or csattention_group; "
                        + "--sparse-methods=" + name);
            }
            sparse.add(method);
        }
        OutputDir.check(out);
        int maxContext = java.util.Arrays.stream(contextTokens).max().orElse(0);
        long longest = (long) maxContext + QUESTION_TOKENS + newTokens;
        if (longest > s.config().contextLength()) {
            throw new IllegalArgumentException("--context-tokens must leave room for the questions within the "
                    + "model's context length " + s.config().contextLength() + "; --context-tokens=" + maxContext);
        }
        LlamaConfig c = s.config();
        long kvBytesLongest = 2L * kv.bytes() * c.layers() * c.kvDim() * longest;
        long weightEstimate = (long) (1.1 * c.vocabSize() * c.dim()) + (long) (layers == null ? c.layers() : layers)
                * (2L * c.dim() * c.dim() + 2L * c.kvDim() * c.dim() + 3L * c.hiddenDim() * c.dim());
        // the context's K and V, and per question's fork the rows it appends (a half fork shares the context's
        // rows), or a copy of the context when float32 (its arrays are read in place), with an eighth of room
        long forkRows = kv == KeyValueCache.Precision.F32 ? longest : QUESTION_TOKENS + newTokens + 64;
        long forkBytes = (long) (1.125 * 2L * kv.bytes() * c.layers() * c.kvDim() * forkRows);
        NumericOptions.requireHeap("bench-model", "weights + KV of the longest context and its forks", 0,
                weightEstimate + kvBytesLongest + questions * forkBytes);
        o.printf(Locale.ROOT, "bench-model: shape %s, quant %s, KV %s, %d threads (common pool %d + caller)%n",
                s.id(), q.id(), kv.id(), Runtime.getRuntime().availableProcessors(),
                java.util.concurrent.ForkJoinPool.commonPool().getParallelism());
        long t0 = System.nanoTime();
        LlamaModel model = SyntheticModel.build(s, layers == null ? 0 : layers, q, seed).withKvPrecision(kv);
        LlamaConfig config = model.config();
        long weightBytes = SyntheticModel.weightBytes(model);
        o.printf(Locale.ROOT, "model: dim %d, %d layers, %d/%d heads (head_dim %d), hidden %d, vocabulary %d; "
                        + "weights read per decode step %.1f MB (built in %.1f s)%n", config.dim(), config.layers(),
                config.heads(), config.kvHeads(), config.headSize(), config.hiddenDim(), config.vocabSize(),
                weightBytes / 1e6, (System.nanoTime() - t0) / 1e9);

        ObjectNode summary = new ObjectMapper().createObjectNode();
        summary.put("shape", s.id());
        summary.put("quant", q.id());
        summary.put("kv_precision", kv.id());
        summary.put("weight_bytes", weightBytes);

        // read bandwidth of the weights, with the threads and the row split the products use
        double bandwidth = readBandwidth(model);
        double limitMs = weightBytes / bandwidth * 1e3;
        o.printf(Locale.ROOT, "weights read bandwidth %.2f GB/s: decode limit %.1f ms/token%n", bandwidth / 1e9,
                limitMs);
        // the arithmetic ceiling of the same threads: what a compute-bound product (batched decode, prefill) could
        // reach here, printed next to what the products reach
        int threads = Runtime.getRuntime().availableProcessors();
        java.util.OptionalDouble peak = io.csattention.kernel.FmaPeak.macsPerSecond(threads);
        double weightMacs = weightMacsPerToken(model);
        if (peak.isPresent()) {
            o.printf(Locale.ROOT, "FMA peak (%d threads, 256-bit vectors, registers only): %.1f GMAC/s%n", threads,
                    peak.getAsDouble() / 1e9);
            summary.put("fma_peak_gmacs", round(peak.getAsDouble() / 1e9));
        }

        SplittableRandom random = new SplittableRandom(seed);
        // prefill, after an untimed one of the same length: with two cores, the compiler threads share them with
        // the product threads, and a warm-up of one block left some runs timing interpreted and tier-3 code
        model.newSession().prefill(tokens(random, config, Math.max(prefillTokens, Session.PREFILL_BLOCK)));
        Session session = model.newSession();
        int[] prompt = tokens(random, config, prefillTokens);
        long start = System.nanoTime();
        float[] logits = session.prefill(prompt);
        double prefillSeconds = (System.nanoTime() - start) / 1e9;
        double prefillRate = prefillTokens / prefillSeconds;
        double gflops = prefillFlops(model, prefillTokens) / prefillSeconds / 1e9;
        o.printf(Locale.ROOT, "prefill: %d tokens in %.2f s, %.1f tokens/s, %.1f GFLOP/s%s%n", prefillTokens,
                prefillSeconds, prefillRate, gflops, ofPeak(gflops / 2 * 1e9, peak));

        // single-sequence decode
        int token = Sampler.argmax(logits);
        for (int i = 0; i < DECODE_WARMUP; i++) {
            token = Sampler.argmax(session.decode(token));
        }
        start = System.nanoTime();
        for (int i = 0; i < decodeTokens; i++) {
            token = Sampler.argmax(session.decode(token));
        }
        double decodeMs = (System.nanoTime() - start) / 1e6 / decodeTokens;
        o.printf(Locale.ROOT, "decode: %.1f ms/token (%.2fx the bandwidth limit %.1f ms; %.1f GMAC/s of weights%s), "
                + "prefill %.1fx faster per token%n", decodeMs, decodeMs / limitMs, limitMs,
                weightMacs / decodeMs / 1e6, ofPeak(weightMacs / decodeMs * 1e3, peak),
                decodeMs / (1e3 / prefillRate));
        summary.put("decode_ms_per_token", round(decodeMs));
        summary.put("decode_limit_ms_per_token", round(limitMs));
        summary.put("prefill_tokens_per_s", round(prefillRate));
        summary.put("prefill_gflops", round(gflops));

        // batched decode over the prefilled context, full attention
        ObjectNode batched = summary.putObject("batched_tokens_per_s");
        ObjectNode batchedMacs = summary.putObject("batched_weight_gmacs");
        DefaultCategoryDataset batchChart = new DefaultCategoryDataset();
        double single = 0;
        o.println("batched decode (full attention, after the prefill context):");
        // an untimed batch first: the products of four or more tokens run the two-row kernel, which the
        // single-sequence steps do not compile
        Generation.runBatch(session.fork(), logits, batchRequests(Math.min(16, Arrays.stream(batches).max()
                .orElse(1)), Math.min(4, batchNewTokens)), 16, new int[0]);
        for (int b : batches) {
            List<Generation.Request> requests = batchRequests(b, batchNewTokens);
            Session base = session.fork();
            start = System.nanoTime();
            List<Generation.Result> results = Generation.runBatch(base, logits, requests, b, new int[0]);
            double seconds = (System.nanoTime() - start) / 1e9;
            // every sequence feeds its prompt token and all but its last generated token
            long steps = results.stream().mapToLong(r -> r.tokens().length).sum();
            double rate = steps / seconds;
            if (b == 1) {
                single = rate;
            }
            o.printf(Locale.ROOT, "  %3d sequences: %.1f tokens/s (%s%.1f GMAC/s of weights%s)%n", b, rate,
                    single > 0 ? String.format(Locale.ROOT, "%.2fx one sequence, ", rate / single) : "",
                    rate * weightMacs / 1e9, ofPeak(rate * weightMacs, peak));
            batched.put(Integer.toString(b), round(rate));
            batchedMacs.put(Integer.toString(b), round(rate * weightMacs / 1e9));
            batchChart.addValue(rate, "tokens/s", Integer.toString(b));
        }

        // end to end: one long context, its questions in one batch, full attention against csattention
        for (AttentionMethod method : sparse) {
            summary.putObject(method.id() + "_speedup_vs_full");
        }
        ObjectNode e2e = summary.putObject("end_to_end");
        DefaultCategoryDataset e2eChart = new DefaultCategoryDataset();
        double shortSeconds = answer(model, model.newSession(), tokens(random, config, SHORT_CONTEXT), null, random)
                .seconds;
        o.printf(Locale.ROOT, "end to end: %d questions of %d prompt + %d new tokens per context, in one batch "
                + "(attention share = 1 - time at a %d-token context / time)%n", questions, QUESTION_TOKENS,
                newTokens, SHORT_CONTEXT);
        o.println("  context  method            sparsity  index s  answers/s  tokens/s  attention  agree   KV MB  "
                + "forks KV MB  index MB  speedup");
        for (int n : contextTokens) {
            Session context = model.newSession();
            int[] contextIds = tokens(random, config, n);
            start = System.nanoTime();
            float[] contextLogits = context.prefill(contextIds);
            double contextPrefill = (System.nanoTime() - start) / 1e9;
            long kvBytes = context.kvBytes(); // K and V of every layer and KV head, at the stored precision
            o.printf(Locale.ROOT, "  %d-token context prefilled in %.1f s (%.1f tokens/s)%n", n, contextPrefill,
                    n / contextPrefill);
            SplittableRandom questionsRandom = new SplittableRandom(seed ^ n);
            Answers full = answer(model, context.fork(), null, contextLogits, questionsRandom.split());
            ObjectNode row = e2e.putObject(Integer.toString(n));
            row.put("prefill_s", round(contextPrefill));
            row.put("kv_bytes", kvBytes);
            report(o, n, "full", Double.NaN, 0, full, full, shortSeconds, kvBytes, 0, row.putObject("full"));
            e2eChart.addValue(full.tokensPerSecond(), "full", Integer.toString(n));
            for (AttentionMethod method : sparse) {
                for (double sparsity : sparsities) {
                    start = System.nanoTime();
                    context.useAttention(method, CSAttentionSettings.defaults().withSparsity(sparsity));
                    double indexSeconds = (System.nanoTime() - start) / 1e9;
                    Answers answers = answer(model, context, null, contextLogits,
                            new SplittableRandom(seed ^ n).split());
                    String key = String.format(Locale.ROOT, "%s_%.2f", method.id(), sparsity);
                    report(o, n, method.id(), sparsity, indexSeconds, answers, full, shortSeconds, kvBytes,
                            context.indexBytes(), row.putObject(key));
                    e2eChart.addValue(answers.tokensPerSecond(), key, Integer.toString(n));
                    if (Math.abs(sparsity - 0.95) < 1e-9) {
                        summary.with(method.id() + "_speedup_vs_full").put(Integer.toString(n),
                                round(answers.tokensPerSecond() / full.tokensPerSecond()));
                    }
                }
            }
        }
        OutputDir.write(out, dir -> {
            Files.writeString(dir.resolve("summary.json"), summary.toPrettyString());
            System.setProperty("java.awt.headless", "true");
            ChartUtils.saveChartAsPNG(dir.resolve("batched_decode.png").toFile(), ChartFactory.createBarChart(
                    "Batched decode, " + s.id() + " " + q.id(), "sequences per step", "tokens/s", batchChart,
                    PlotOrientation.VERTICAL, false, false, false), 800, 500);
            JFreeChart chart = ChartFactory.createBarChart("End to end: " + questions + " questions x " + newTokens
                            + " tokens per context, " + s.id() + " " + q.id(), "context tokens", "tokens/s",
                    e2eChart, PlotOrientation.VERTICAL, true, false, false);
            ChartUtils.saveChartAsPNG(dir.resolve("end_to_end.png").toFile(), chart, 900, 560);
        });
        o.println("wrote " + out.resolve("summary.json") + ", batched_decode.png, end_to_end.png");
        o.println(new ObjectMapper().writeValueAsString(summary));
        return 0;
    }

    /**
     * One method's answers: the time of the batch, the tokens generated, the answers, and the most K and V bytes the
     * batch's forks held at once (the rows each appends; a float32 fork copies the context's caches).
     */
    private record Answers(double seconds, long tokens, List<int[]> answers, long forksKvPeak) {
        double tokensPerSecond() {
            return tokens / seconds;
        }
    }

    /**
     * The questions answered in one batch over {@code context} (prefilled, with its attention method); with
     * {@code contextIds} the context is prefilled here first.
     */
    private Answers answer(LlamaModel model, Session context, int[] contextIds, float[] contextLogits,
                           SplittableRandom random) {
        float[] logits = contextIds == null ? contextLogits : context.prefill(contextIds);
        List<Generation.Request> requests = new ArrayList<>();
        for (int i = 0; i < questions; i++) {
            requests.add(new Generation.Request(tokens(random, model.config(), QUESTION_TOKENS),
                    new Sampler(0f, 1f, i), newTokens));
        }
        long[] peak = new long[1];
        long start = System.nanoTime();
        List<Generation.Result> results = Generation.runBatch(context, logits, requests, questions, new int[0],
                bytes -> peak[0] = Math.max(peak[0], bytes));
        double seconds = (System.nanoTime() - start) / 1e9;
        long tokens = results.stream().mapToLong(r -> r.tokens().length).sum();
        return new Answers(seconds, tokens, results.stream().map(Generation.Result::tokens).toList(), peak[0]);
    }

    private void report(PrintWriter o, int n, String method, double sparsity, double indexSeconds, Answers a,
                        Answers full, double shortSeconds, long kvBytes, long indexBytes, ObjectNode row) {
        double share = Math.max(0, 1 - shortSeconds / a.seconds);
        long agree = 0;
        long total = 0;
        for (int i = 0; i < a.answers.size(); i++) {
            int[] mine = a.answers.get(i);
            int[] theirs = full.answers.get(i);
            for (int j = 0; j < Math.min(mine.length, theirs.length); j++) {
                total++;
                agree += mine[j] == theirs[j] ? 1 : 0;
            }
        }
        double agreement = total == 0 ? 1 : (double) agree / total;
        double speedup = a.tokensPerSecond() / full.tokensPerSecond();
        o.printf(Locale.ROOT, "  %7d  %-16s  %8s  %7.2f  %9.2f  %8.1f  %8.0f%%  %5.3f  %6.1f  %11.1f  %8.1f  %6.2fx%n", n,
                method, Double.isNaN(sparsity) ? "-" : String.format(Locale.ROOT, "%.2f", sparsity), indexSeconds,
                questions / a.seconds, a.tokensPerSecond(), 100 * share, agreement, kvBytes / 1e6, a.forksKvPeak() / 1e6,
                indexBytes / 1e6,
                speedup);
        row.put("answers_per_s", round(questions / a.seconds));
        row.put("tokens_per_s", round(a.tokensPerSecond()));
        row.put("attention_share", round(share));
        row.put("tokens_agreeing_with_full", round(agreement));
        row.put("index_s", round(indexSeconds));
        row.put("index_bytes", indexBytes);
        row.put("forks_kv_peak_bytes", a.forksKvPeak());
        row.put("speedup_vs_full", round(speedup));
    }

    private static int[] tokens(SplittableRandom random, LlamaConfig config, int n) {
        return random.ints(n, 0, config.vocabSize()).toArray();
    }

    /** Multiply-adds x 2 of a prefill of {@code tokens}: the matrix products and the causal attention. */
    /** Multiply-adds of the weight products of one decode token (every matrix a step reads, the classifier too). */
    private static double weightMacsPerToken(LlamaModel model) {
        double macs = 0;
        for (WeightMatrix m : SyntheticModel.decodeMatrices(model)) {
            macs += (double) m.rows() * m.cols();
        }
        return macs;
    }

    /** ", N% of the FMA peak" for {@code macsPerSecond}, or nothing without a measured peak. */
    private static String ofPeak(double macsPerSecond, java.util.OptionalDouble peak) {
        return peak.isPresent() ? String.format(Locale.ROOT, ", %.0f%% of the FMA peak",
                100 * macsPerSecond / peak.getAsDouble()) : "";
    }

    private static double prefillFlops(LlamaModel model, int tokens) {
        LlamaConfig c = model.config();
        double perToken = 0;
        List<WeightMatrix> matrices = SyntheticModel.decodeMatrices(model);
        // the classifier is counted once below: only the last token goes through it
        for (WeightMatrix m : matrices.subList(0, matrices.size() - 1)) {
            perToken += 2.0 * m.rows() * m.cols();
        }
        double attention = 4.0 * c.layers() * c.heads() * c.headSize() * ((double) tokens * (tokens + 1) / 2);
        // only the last token goes through the classifier
        return perToken * tokens + attention + 2.0 * c.vocabSize() * c.dim();
    }

    /** {@code count} one-token prompts of the batched decode, each generating {@code newTokens}. */
    private static List<Generation.Request> batchRequests(int count, int newTokens) {
        List<Generation.Request> requests = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            requests.add(new Generation.Request(new int[] {2 + i % 1000}, new Sampler(0f, 1f, i), newTokens));
        }
        return requests;
    }

    /** What the bandwidth pass read, kept so that the reads are not optimized away. */
    private static volatile long readChecksum;

    /** Bytes per second of reading every weight a decode step reads, split across threads like the products. */
    private static double readBandwidth(LlamaModel model) {
        List<WeightMatrix> matrices = SyntheticModel.decodeMatrices(model);
        long bytes = SyntheticModel.weightBytes(model);
        int chunks = 4 * Runtime.getRuntime().availableProcessors();
        double best = Double.MAX_VALUE;
        long sink = 0;
        for (int repeat = 0; repeat < 4; repeat++) {
            long start = System.nanoTime();
            for (WeightMatrix m : matrices) {
                sink ^= IntStream.range(0, chunks).parallel().mapToLong(chunk -> m.readRows(
                        (int) ((long) m.rows() * chunk / chunks), (int) ((long) m.rows() * (chunk + 1) / chunks)))
                        .reduce(0, (a, b) -> a ^ b);
            }
            best = Math.min(best, (System.nanoTime() - start) / 1e9);
        }
        readChecksum = sink;
        return bytes / best;
    }

    private static double round(double v) {
        return Math.round(v * 1000) / 1000.0;
    }
}
