package io.csattention.eval;

import io.csattention.baseline.AttentionMethod;
import io.csattention.core.BlockDecoder;
import io.csattention.core.BudgetPlan;
import io.csattention.core.CSAttentionSettings;
import io.csattention.core.Check;
import io.csattention.core.FloatMatrix;
import io.csattention.core.KeySelector;
import io.csattention.core.KeyValueCache;
import io.csattention.core.CSAttentionIndex;
import io.csattention.core.RopeInfo;
import io.csattention.device.ContextDecoder;
import io.csattention.device.DecodeBackend;
import io.csattention.device.DecodedBlock;
import io.csattention.kernel.VectorKernels;

import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;

/**
 * Runs every requested method over one head's tensors with the same budget, then measures each against {@code full}
 * (output error, attention mass) and {@code oracle} (recall of the exact top set under the same sink/window
 * convention). Decode time is measured single-threaded, per query, selection plus attention.
 */
public final class TensorEvaluation {

    /**
     * The inputs of one head: K, V [N,d], prefill queries [N_p,d], decode queries [M,d]; optionally the RoPE the
     * head was rotated with and the decode queries' positions (both null when position-free).
     */
    public record Inputs(FloatMatrix keys, FloatMatrix values, FloatMatrix prefillQueries, FloatMatrix queries,
                         RopeInfo rope, long[] queryPositions) {
        public Inputs(FloatMatrix keys, FloatMatrix values, FloatMatrix prefillQueries, FloatMatrix queries) {
            this(keys, values, prefillQueries, queries, null, null);
        }

        public Inputs {
            Check.that(queryPositions == null || queryPositions.length == queries.rows(),
                    "query positions must have one entry per query " + queries.rows(), "query-positions",
                    queryPositions == null ? 0 : queryPositions.length);
            int d = keys.cols();
            Check.that(values.rows() == keys.rows(), "values must have the keys' rows " + keys.rows(), "values.rows",
                    values.rows());
            Check.that(values.cols() == d, "values must have the keys' dim " + d, "values.cols", values.cols());
            Check.that(prefillQueries.cols() == d, "prefill queries must have the keys' dim " + d,
                    "prefill-queries.cols", prefillQueries.cols());
            Check.that(queries.cols() == d, "queries must have the keys' dim " + d, "queries.cols", queries.cols());
        }
    }

    private TensorEvaluation() {
    }

    /** Evaluates {@code methods} (full and oracle are always computed as references) and returns them in order. */
    public static List<MethodResult> run(VectorKernels kernels, Inputs inputs, List<AttentionMethod> methods,
                                         CSAttentionSettings settings) {
        return run(kernels, inputs, methods, settings, null);
    }

    /**
     * The same, with csattention's index build and decode on {@code backend} when it is a GPU (a block of all
     * queries at once; RoPE bands are a CPU feature, so a head with RoPE information stays on the CPU path).
     */
    public static List<MethodResult> run(VectorKernels kernels, Inputs inputs, List<AttentionMethod> methods,
                                         CSAttentionSettings settings, DecodeBackend backend) {
        int n = inputs.keys().rows();
        int d = inputs.keys().cols();
        int m = inputs.queries().rows();
        Map<AttentionMethod, MethodResult> results = new EnumMap<>(AttentionMethod.class);
        for (AttentionMethod reference : List.of(AttentionMethod.FULL, AttentionMethod.ORACLE)) {
            results.put(reference, decode(kernels, inputs, reference, settings));
        }
        double[][] probabilities = fullProbabilities(kernels, inputs);
        MethodResult full = results.get(AttentionMethod.FULL);
        MethodResult oracle = results.get(AttentionMethod.ORACLE);
        results.put(AttentionMethod.FULL, measure(full, full, oracle, probabilities, d, m));
        results.put(AttentionMethod.ORACLE, measure(oracle, full, oracle, probabilities, d, m));
        List<MethodResult> ordered = new ArrayList<>();
        for (AttentionMethod method : methods) {
            MethodResult result = results.get(method);
            if (result == null) {
                boolean onGpu = method == AttentionMethod.CSATTENTION && backend != null && backend.isGpu()
                        && inputs.rope() == null;
                MethodResult raw = onGpu ? decodeOn(backend, inputs, settings) : decode(kernels, inputs, method, settings);
                result = measure(raw, full, oracle, probabilities, d, m);
                results.put(method, result);
            }
            ordered.add(result);
        }
        return ordered;
    }

    private static MethodResult decode(VectorKernels kernels, Inputs inputs, AttentionMethod method,
                                       CSAttentionSettings settings) {
        int d = inputs.keys().cols();
        int m = inputs.queries().rows();
        KeyValueCache cache = KeyValueCache.of(inputs.keys(), inputs.values());
        long buildStart = System.nanoTime();
        KeySelector selector = method.newSelector(kernels, cache, inputs.prefillQueries(), settings, inputs.rope());
        double buildMillis = (System.nanoTime() - buildStart) / 1e6;
        BudgetPlan plan = method.plan(settings, cache.size());
        int width = plan.budget();
        int[] selected = new int[m * width];
        float[] outputs = new float[m * d];
        float[] queries = inputs.queries().data();
        long decodeNanos = 0;
        for (int q = 0; q < m; q++) {
            long start = System.nanoTime();
            int[] chosen = BlockDecoder.decodeBlock(kernels, cache, selector, plan, queries, q, 1,
                    inputs.queryPositions(), outputs)[0];
            decodeNanos += System.nanoTime() - start;
            System.arraycopy(chosen, 0, selected, q * width, width);
        }
        return new MethodResult(method, selected, width, outputs, 0, 0, 0, 0, 0, buildMillis,
                decodeNanos / 1e3 / Math.max(1, m), selector.indexBytes(), width);
    }

    /** csattention on a decode backend: one index build, then all queries as one block. */
    private static MethodResult decodeOn(DecodeBackend backend, Inputs inputs, CSAttentionSettings settings) {
        KeyValueCache cache = KeyValueCache.of(inputs.keys(), inputs.values());
        long buildStart = System.nanoTime();
        CSAttentionIndex index = backend.buildIndex(inputs.keys(), inputs.prefillQueries(), settings);
        double buildMillis = (System.nanoTime() - buildStart) / 1e6;
        try (ContextDecoder decoder = backend.open(cache, index, settings)) {
            long start = System.nanoTime();
            DecodedBlock block = decoder.decode(inputs.queries());
            double micros = (System.nanoTime() - start) / 1e3 / Math.max(1, block.queries());
            return new MethodResult(AttentionMethod.CSATTENTION, block.selected(), block.plan().budget(),
                    block.outputs().data(), 0, 0, 0, 0, 0, buildMillis, micros, index.bytes(), block.plan().budget());
        }
    }

    private static double[][] fullProbabilities(VectorKernels kernels, Inputs inputs) {
        int n = inputs.keys().rows();
        int d = inputs.keys().cols();
        int m = inputs.queries().rows();
        double[][] out = new double[m][];
        java.util.stream.IntStream.range(0, m).parallel().forEach(q -> {
            float[] scores = new float[n];
            kernels.dotRows(inputs.queries().data(), q * d, inputs.keys().data(), d, 0, d, 0, n, scores, 0);
            double max = Double.NEGATIVE_INFINITY;
            double scale = 1 / Math.sqrt(d);
            for (float s : scores) {
                max = Math.max(max, s * scale);
            }
            double[] p = new double[n];
            double total = 0;
            for (int i = 0; i < n; i++) {
                p[i] = Math.exp(scores[i] * scale - max);
                total += p[i];
            }
            for (int i = 0; i < n; i++) {
                p[i] /= total;
            }
            out[q] = p;
        });
        return out;
    }

    private static MethodResult measure(MethodResult result, MethodResult full, MethodResult oracle,
                                        double[][] probabilities, int d, int m) {
        double[] recall = new double[m];
        double[] mass = new double[m];
        double[] error = new double[m];
        int width = result.selectionWidth();
        for (int q = 0; q < m; q++) {
            recall[q] = Metrics.recall(result.selected(), q * width, width, oracle.selected(),
                    q * oracle.selectionWidth(), oracle.selectionWidth());
            mass[q] = Metrics.massRecall(result.selected(), q * width, width, probabilities[q]);
            error[q] = Metrics.relativeError(result.outputs(), q * d, full.outputs(), q * d, d);
        }
        return new MethodResult(result.method(), result.selected(), width, result.outputs(), Metrics.mean(recall),
                Metrics.quantile(recall, 0.10), Metrics.mean(mass), Metrics.mean(error), Metrics.quantile(error, 0.90),
                result.buildMillis(), result.decodeMicrosPerQuery(), result.indexBytes(), result.budget());
    }
}
