package io.csattention.jobs;

import io.csattention.core.FloatMatrix;
import io.csattention.core.RopeInfo;
import io.csattention.eval.SyntheticContext;

import java.io.IOException;
import java.nio.file.Path;

/**
 * The tensors of one benchmarked head: keys and values [N, d], prefill queries [N_p, d] and decode queries [M, d], and
 * the RoPE the head was rotated with when known. {@link #synthetic} is the one place that says which generator the
 * benchmark uses.
 */
record BenchData(String source, FloatMatrix keys, FloatMatrix values, FloatMatrix prefillQueries,
                 FloatMatrix queries, RopeInfo rope) {

    static BenchData fromNpy(Path keys, Path values, Path prefillQueries, Path queries) throws IOException {
        FloatMatrix k = EvalTensorsCommand.load(keys, "--keys");
        FloatMatrix v = EvalTensorsCommand.load(values, "--values");
        FloatMatrix pq = EvalTensorsCommand.load(prefillQueries, "--prefill-queries");
        FloatMatrix q = EvalTensorsCommand.load(queries, "--queries");
        requireDim(k, v, values);
        requireDim(k, pq, prefillQueries);
        requireDim(k, q, queries);
        if (k.rows() != v.rows()) {
            throw new IllegalArgumentException("values must have as many rows as the keys " + k.rows() + "; "
                    + values + " rows=" + v.rows());
        }
        return new BenchData("npy:" + keys.getFileName(), k, v, pq, q, null);
    }

    private static void requireDim(FloatMatrix keys, FloatMatrix other, Path file) {
        if (other.cols() != keys.cols()) {
            throw new IllegalArgumentException("every input must have the keys' dim " + keys.cols() + "; " + file
                    + " cols=" + other.cols());
        }
    }

    /**
     * A seeded head of {@code tokens} keys from the project's long-context generator ({@link SyntheticContext}:
     * topics, query/key shift, sinks, needles, RoPE base 500000), with its RoPE information for the index.
     */
    static BenchData synthetic(int tokens, int dim, int queryCount, long seed) {
        SyntheticContext.Spec spec = SyntheticContext.Spec.of(tokens, dim, queryCount, seed);
        SyntheticContext.Head head = SyntheticContext.generate(spec);
        RopeInfo rope = new RopeInfo(spec.ropeBase(), spec.ropeStyle(), head.prefillQueryPositions(), tokens,
                RopeInfo.DEFAULT_DECODE_SPAN);
        return new BenchData("synthetic(seed=" + seed + ")", head.keys(), head.values(), head.prefillQueries(),
                head.queries(), rope);
    }

    int tokens() {
        return keys.rows();
    }

    int dim() {
        return keys.cols();
    }
}
