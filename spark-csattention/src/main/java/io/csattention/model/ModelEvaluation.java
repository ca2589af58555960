package io.csattention.model;

import io.csattention.baseline.AttentionMethod;
import io.csattention.baseline.OracleSelector;
import io.csattention.core.Attention;
import io.csattention.core.BudgetPlan;
import io.csattention.core.CSAttentionSettings;
import io.csattention.core.Check;
import io.csattention.core.KeyValueCache;
import io.csattention.eval.Metrics;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;

/**
 * Accuracy of sparse attention methods on a real model's own contexts and queries (the {@code eval-model}
 * command).
 *
 * <p>For each of {@code contexts} contexts: sample {@code contextTokens} tokens from the model (BOS first, then
 * temperature 1, top-p 0.9, seed {@code seed + context}); prefill all but the last one (the index of every
 * (layer, KV head) is built over these keys). A continuation starts by feeding the context's last token; continuation
 * 0 is full attention's greedy continuation of {@code newTokens} tokens, continuation j > 0 starts with a token
 * sampled from full attention's distribution (seed {@code seed + 7919 * context + j}) and continues greedily. So
 * every predicted position is decoded by the method under test. Per method:
 * <ul>
 *   <li>teacher-forced agreement: the method is fed full attention's continuation, and the share of positions where
 *   its argmax equals full attention's is counted;</li>
 *   <li>free-running greedy agreement: the method decodes greedily on its own (after the same first token), and the
 *   share of positions where its token equals full attention's is counted;</li>
 *   <li>per (layer, query head), on the teacher-forced run's real decode queries: recall of the oracle set (the exact
 *   top keys by q.k under the same budget plan) and relative L2 error of the attention output against exact
 *   attention over the same cache;</li>
 *   <li>perplexity of the continuation tokens under the method, and its difference from full attention's.</li>
 * </ul>
 * Speeds: the prefill of each context against decoding the same tokens one by one on a fresh session (the first
 * context is left out as JIT warm-up when there are several); per method, the free-running decode.
 */
public final class ModelEvaluation {

    public static final float CONTEXT_TEMPERATURE = 1.0f;
    public static final float CONTEXT_TOP_P = 0.9f;

    /** What to evaluate. */
    public record Options(int contexts, int contextTokens, int continuations, int newTokens,
                          List<AttentionMethod> methods, CSAttentionSettings settings, long seed) {
        public Options {
            Check.positive(contexts, "contexts");
            Check.that(contextTokens >= 2, "context-tokens must be >= 2", "context-tokens", contextTokens);
            Check.positive(continuations, "continuations");
            Check.positive(newTokens, "new-tokens");
            Check.that(!methods.isEmpty(), "methods must name at least one method", "methods", methods);
        }
    }

    /**
     * One method's results; per-layer/head arrays are [layers][heads]. {@code greedyPrefix} is the mean share of a
     * continuation decoded before the first token that differs from full attention's.
     */
    public record MethodResult(AttentionMethod method, double agreement, double greedyAgreement, double greedyPrefix,
                               double recall,
                               double[][] recallByLayerHead, double outputError, double[][] outputErrorByLayerHead,
                               double perplexity, double perplexityDelta, double decodeTokensPerSecond,
                               long indexBytes) {
    }

    /** Everything {@code eval-model} reports. */
    public record Report(Options options, Map<AttentionMethod, MethodResult> methods, int positions,
                         double prefillTokensPerSecond, double decodeTokensPerSecond) {
    }

    private ModelEvaluation() {
    }

    public static Report run(LlamaModel model, Options options) {
        LlamaConfig config = model.config();
        Check.that(options.contextTokens() + options.newTokens() <= config.contextLength(),
                "context-tokens + new-tokens must be at most the model's context length " + config.contextLength(),
                "tokens", options.contextTokens() + options.newTokens());
        Map<AttentionMethod, Accumulator> accumulators = new LinkedHashMap<>();
        List<AttentionMethod> methods = new ArrayList<>(options.methods());
        if (!methods.contains(AttentionMethod.FULL)) {
            methods.add(0, AttentionMethod.FULL);
        }
        for (AttentionMethod method : methods) {
            accumulators.put(method, new Accumulator(config.layers(), config.heads()));
        }
        long prefillNanos = 0;
        long prefillTokens = 0;
        long decodeNanos = 0;
        long decodeTokens = 0;
        int positions = 0;
        for (int c = 0; c < options.contexts(); c++) {
            int[] context = sampleContext(model, options.contextTokens(), options.seed() + c);
            int[] prefix = Arrays.copyOf(context, context.length - 1);
            int last = context[context.length - 1];
            Session base = model.newSession();
            long started = System.nanoTime();
            base.prefill(prefix);
            long prefillTime = System.nanoTime() - started;
            // the same tokens decoded one by one, for the prefill speed-up
            Session stepwise = model.newSession();
            started = System.nanoTime();
            for (int token : prefix) {
                stepwise.decode(token);
            }
            long decodeTime = System.nanoTime() - started;
            // the first context warms the JIT up; it is timed only when it is the only one
            if (c > 0 || options.contexts() == 1) {
                prefillNanos += prefillTime;
                prefillTokens += prefix.length;
                decodeNanos += decodeTime;
                decodeTokens += prefix.length;
            }
            for (int j = 0; j < options.continuations(); j++) {
                Sampler firstToken = j == 0 ? Sampler.greedy()
                        : new Sampler(1.0f, 1.0f, options.seed() + 7919L * c + j);
                Continuation full = fullContinuation(base, last, options.newTokens(), firstToken,
                        options.settings());
                positions += options.newTokens();
                for (AttentionMethod method : methods) {
                    evaluate(base, last, full, method, options.settings(), accumulators.get(method));
                }
            }
        }
        double fullPerplexity = accumulators.get(AttentionMethod.FULL).perplexity();
        Map<AttentionMethod, MethodResult> results = new LinkedHashMap<>();
        for (AttentionMethod method : options.methods()) {
            results.put(method, accumulators.get(method).result(method, fullPerplexity));
        }
        return new Report(options, results, positions, prefillTokens / (prefillNanos / 1e9),
                decodeTokens / (decodeNanos / 1e9));
    }

    /** BOS, then tokens sampled with exact attention. */
    static int[] sampleContext(LlamaModel model, int length, long seed) {
        Sampler sampler = new Sampler(CONTEXT_TEMPERATURE, CONTEXT_TOP_P, seed);
        Session session = model.newSession();
        int[] tokens = new int[length];
        tokens[0] = 1;
        for (int i = 1; i < length; i++) {
            tokens[i] = sampler.sample(session.decode(tokens[i - 1]));
        }
        return tokens;
    }

    /** Full attention's tokens after the context and its logits at each of them. */
    private record Continuation(int[] tokens, float[][] logits) {
    }

    private static Continuation fullContinuation(Session base, int last, int length, Sampler first,
                                                 CSAttentionSettings settings) {
        Session session = base.fork();
        // the same attention code as the method runs, so that full against full agrees exactly
        session.useAttention(AttentionMethod.FULL, settings);
        int[] tokens = new int[length];
        float[][] logits = new float[length][];
        logits[0] = session.decode(last);
        for (int k = 0; k < length; k++) {
            tokens[k] = k == 0 ? first.sample(logits[0]) : Sampler.argmax(logits[k]);
            if (k + 1 < length) {
                logits[k + 1] = session.decode(tokens[k]);
            }
        }
        return new Continuation(tokens, logits);
    }

    private static void evaluate(Session base, int last, Continuation full, AttentionMethod method,
                                 CSAttentionSettings settings, Accumulator acc) {
        int length = full.tokens().length;
        // teacher-forced, with the probe on every decode attention
        Session forced = base.fork();
        forced.useAttention(method, settings);
        forced.setProbe(acc.probe(forced.model(), settings));
        float[] logits = forced.decode(last);
        for (int k = 0; k < length; k++) {
            acc.teacherForced(Sampler.argmax(logits) == Sampler.argmax(full.logits()[k]),
                    -Sampler.logSoftmax(logits)[full.tokens()[k]]);
            if (k + 1 < length) {
                logits = forced.decode(full.tokens()[k]);
            }
        }
        acc.indexBytes = forced.indexBytes();
        // free-running greedy, timed
        Session free = base.fork();
        free.useAttention(method, settings);
        long started = System.nanoTime();
        logits = free.decode(last);
        boolean diverged = false;
        for (int k = 0; k < length; k++) {
            int token = k == 0 ? full.tokens()[0] : Sampler.argmax(logits);
            diverged |= token != full.tokens()[k];
            acc.greedy(token == full.tokens()[k], !diverged);
            if (k + 1 < length) {
                logits = free.decode(token);
            }
        }
        acc.decodeNanos += System.nanoTime() - started;
        acc.decodeTokens += length;
    }

    /** Sums over contexts and continuations for one method. */
    private static final class Accumulator {
        private final double[][] recall;
        private final double[][] error;
        private final long[][] observations;
        private long agreements;
        private long greedyAgreements;
        private long positions;
        private long greedyPositions;
        private long greedyPrefix;
        private double negativeLogLikelihood;
        private long decodeNanos;
        private long decodeTokens;
        private long indexBytes;

        Accumulator(int layers, int heads) {
            recall = new double[layers][heads];
            error = new double[layers][heads];
            observations = new long[layers][heads];
        }

        void teacherForced(boolean agrees, double nll) {
            agreements += agrees ? 1 : 0;
            positions++;
            negativeLogLikelihood += nll;
        }

        void greedy(boolean agrees, boolean beforeDivergence) {
            greedyAgreements += agrees ? 1 : 0;
            greedyPrefix += beforeDivergence ? 1 : 0;
            greedyPositions++;
        }

        double perplexity() {
            return Math.exp(negativeLogLikelihood / positions);
        }

        AttentionProbe probe(LlamaModel model, CSAttentionSettings settings) {
            return (layer, head, query, queryOff, cache, plan, selected, out, outOff) -> {
                BudgetPlan oraclePlan = settings.plan(cache.size());
                int[] oracle = new OracleSelector(model.kernels(), cache).select(query, queryOff, oraclePlan);
                recall[layer][head] += Metrics.recall(selected, oracle);
                error[layer][head] += relativeError(model, query, queryOff, cache, out, outOff);
                observations[layer][head]++;
            };
        }

        private static double relativeError(LlamaModel model, float[] query, int queryOff, KeyValueCache cache,
                                            float[] out, int outOff) {
            int d = cache.dim();
            float[] exact = new float[d];
            Attention.attend(model.kernels(), query, queryOff, cache, IntStream.range(0, cache.size()).toArray(),
                    exact, 0);
            return Metrics.relativeError(out, outOff, exact, 0, d);
        }

        MethodResult result(AttentionMethod method, double fullPerplexity) {
            int layers = recall.length;
            int heads = recall[0].length;
            double[][] meanRecall = new double[layers][heads];
            double[][] meanError = new double[layers][heads];
            double recallTotal = 0;
            double errorTotal = 0;
            for (int l = 0; l < layers; l++) {
                for (int h = 0; h < heads; h++) {
                    long n = Math.max(1, observations[l][h]);
                    meanRecall[l][h] = recall[l][h] / n;
                    meanError[l][h] = error[l][h] / n;
                    recallTotal += meanRecall[l][h];
                    errorTotal += meanError[l][h];
                }
            }
            double perplexity = perplexity();
            return new MethodResult(method, (double) agreements / positions, (double) greedyAgreements / greedyPositions,
                    (double) greedyPrefix / greedyPositions, recallTotal / (layers * heads), meanRecall, errorTotal / (layers * heads), meanError, perplexity,
                    perplexity - fullPerplexity, decodeTokens / (decodeNanos / 1e9), indexBytes);
        }
    }
}
