package io.csattention.jobs;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.csattention.baseline.AttentionMethod;
import io.csattention.core.Check;
import io.csattention.core.FloatMatrix;
import io.csattention.core.Rope;
import io.csattention.core.RopeInfo;
import io.csattention.eval.MethodResult;
import io.csattention.eval.TensorEvaluation;
import io.csattention.format.Npy;
import io.csattention.kernel.Kernels;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.stream.LongStream;

/**
 * {@code eval-tensors}: every method over one head given as {@code .npy} files, with the same budget; writes
 * {@code DIR/<method>/selected.npy}, {@code DIR/<method>/output.npy} and {@code DIR/summary.json}.
 */
@Command(name = "eval-tensors", mixinStandardHelpOptions = true,
        description = "Evaluate sparse attention methods on one head's K, V, prefill queries and decode queries "
                + "(.npy).")
public final class EvalTensorsCommand implements Callable<Integer> {

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = "--keys", required = true, description = "K [N,d] .npy (float32, float16 or float64).")
    Path keys;

    @Option(names = "--values", required = true, description = "V [N,d] .npy.")
    Path values;

    @Option(names = "--prefill-queries", required = true, description = "Prefill queries [N_p,d] .npy.")
    Path prefillQueries;

    @Option(names = "--queries", required = true, description = "Decode queries [M,d] .npy; each attends all N keys.")
    Path queries;

    @Option(names = "--out", required = true, description = "Output directory (new or empty).")
    Path out;

    @Option(names = "--rope-base", description = "RoPE base the head was rotated with (enables the band treatment).")
    Double ropeBase;

    @Option(names = "--rope-style", description = "RoPE pairing: ${COMPLETION-CANDIDATES} (default: interleaved).")
    Rope.Style ropeStyle;

    @Option(names = "--prefill-query-positions", description = "int32/int64 [N_p] .npy (default: row i at position i).")
    Path prefillQueryPositions;

    @Option(names = "--query-positions", description = "int32/int64 [M] .npy (default: row j at position N + j).")
    Path queryPositions;

    @Mixin
    EvalOptions options;

    @Override
    public Integer call() throws Exception {
        var settings = options.settings();
        var decodeBackend = options.backend();
        List<AttentionMethod> methodList = options.methods();
        OutputDir.check(out);
        FloatMatrix k = load(keys, "--keys");
        FloatMatrix v = load(values, "--values");
        FloatMatrix pq = load(prefillQueries, "--prefill-queries");
        FloatMatrix q = load(queries, "--queries");
        Check.that(v.rows() == k.rows(), "--values must have as many rows as --keys (" + k.rows() + ")",
                "--values rows", v.rows());
        Check.that(v.cols() == k.cols(), "--values must have the dimension of --keys (" + k.cols() + ")",
                "--values d", v.cols());
        Check.that(pq.cols() == k.cols(), "--prefill-queries must have the dimension of --keys (" + k.cols() + ")",
                "--prefill-queries d", pq.cols());
        Check.that(q.cols() == k.cols(), "--queries must have the dimension of --keys (" + k.cols() + ")",
                "--queries d", q.cols());
        settings.plan(k.rows());
        settings.resolveSubspaces(k.cols());

        RopeInfo rope = null;
        long[] decodePositions = null;
        if (ropeBase != null) {
            long[] prefillPositions = prefillQueryPositions != null
                    ? positions(prefillQueryPositions, "--prefill-query-positions", pq.rows())
                    : LongStream.range(0, pq.rows()).toArray();
            decodePositions = queryPositions != null ? positions(queryPositions, "--query-positions", q.rows())
                    : LongStream.range(k.rows(), k.rows() + q.rows()).toArray();
            rope = new RopeInfo(ropeBase, ropeStyle == null ? Rope.Style.INTERLEAVED : ropeStyle, prefillPositions,
                    decodePositions[0], RopeInfo.DEFAULT_DECODE_SPAN);
        } else if (ropeStyle != null || prefillQueryPositions != null || queryPositions != null) {
            throw new IllegalArgumentException(
                    "--rope-style and the position files need --rope-base; --rope-base=none");
        }

        var kernels = Kernels.preferred();
        List<MethodResult> results = TensorEvaluation.run(kernels,
                new TensorEvaluation.Inputs(k, v, pq, q, rope, decodePositions), methodList, settings,
                decodeBackend);
        ObjectNode context = EvalReport.object();
        context.put("tokens", k.rows()).put("head_dim", k.cols()).put("prefill_queries", pq.rows())
                .put("queries", q.rows()).put("sparsity", settings.sparsity())
                .put("kv_bytes", 8L * k.rows() * k.cols()).put("kernels", kernels.name());
        EvalReport.finish(spec.commandLine().getOut(), String.format(Locale.ROOT,
                "eval-tensors: N=%d d=%d prefill=%d queries=%d sparsity=%s kernels=%s device=%s", k.rows(), k.cols(),
                pq.rows(),
                q.rows(), settings.sparsity(), kernels.name(), decodeBackend.name()), results, context, out, q.rows(),
                k.cols(), options.json);
        return 0;
    }

    /** A matrix of at least one row and only finite values (else one line naming the flag, file and first bad value). */
    static FloatMatrix load(Path file, String flag) throws IOException {
        FloatMatrix matrix = Npy.readMatrix(file);
        Check.that(matrix.rows() > 0, flag + " must have at least one row", flag + " rows", matrix.rows());
        Check.finite(matrix.data(), matrix.rows(), matrix.cols(), flag + " " + file);
        return matrix;
    }

    private static long[] positions(Path file, String flag, int expected) throws IOException {
        long[] positions = Npy.readLongs(file);
        Check.that(positions.length == expected, flag + " must have one position per row (" + expected + ")",
                flag + " length", positions.length);
        return positions;
    }
}
