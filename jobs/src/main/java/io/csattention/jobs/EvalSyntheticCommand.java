package io.csattention.jobs;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.csattention.core.Rope;
import io.csattention.core.RopeInfo;
import io.csattention.eval.MethodResult;
import io.csattention.eval.SyntheticContext;
import io.csattention.eval.TensorEvaluation;
import io.csattention.kernel.Kernels;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

/** {@code eval-synthetic}: the eval-tensors report on one head from the synthetic long-context generator. */
@Command(name = "eval-synthetic", mixinStandardHelpOptions = true,
        description = "Evaluate every method on a synthetic long-context head "
                + "(topics, query/key shift, RoPE, sinks, needles).")
public final class EvalSyntheticCommand implements Callable<Integer> {

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = "--tokens", description = "Context length N (default: ${DEFAULT-VALUE}).", defaultValue = "32768")
    int tokens;

    @Option(names = "--head-dim", description = "Head dimension d (default: ${DEFAULT-VALUE}).", defaultValue = "128")
    int headDim;

    @Option(names = "--queries", description = "Decode queries M (default: ${DEFAULT-VALUE}).", defaultValue = "128")
    int queries;

    @Option(names = "--data-seed", description = "Seed of the generator (default: ${DEFAULT-VALUE}).",
            defaultValue = "7")
    long dataSeed;

    @Option(names = "--rope-base", description = "RoPE base of the generated head (default: ${DEFAULT-VALUE}).",
            defaultValue = "500000")
    double ropeBase;

    @Option(names = "--rope-style", description = "RoPE pairing: ${COMPLETION-CANDIDATES} (default: ${DEFAULT-VALUE}).",
            defaultValue = "HALF")
    Rope.Style ropeStyle;

    @Option(names = "--topics", description = "Topics in the context (default: ${DEFAULT-VALUE}).", defaultValue = "64")
    int topics;

    @Option(names = "--needles", description = "Rare needle tokens (default: ${DEFAULT-VALUE}).", defaultValue = "16")
    int needles;

    @Option(names = "--out", description = "Directory for selected.npy, output.npy and summary.json (optional).")
    Path out;

    @Option(names = "--rope-decode-span", description = "Positions after the context the position-free lists must "
            + "stay valid for (default: ${DEFAULT-VALUE}).",
            defaultValue = "256")
    int decodeSpan;

    @Option(names = "--no-rope-info",
            description = "Do not tell the index the RoPE of the generated head (treat every band as it is).")
    boolean positionFree;

    @Mixin
    EvalOptions options;

    /**
     * One line instead of an OutOfMemoryError: the head (keys, values, prefill queries and the cache's copy of keys
     * and values), every method's outputs, and the selections (full attention's holds every key of every query).
     */
    private void requireHeap(double sparsity, List<io.csattention.baseline.AttentionMethod> methodList) {
        long head = (long) tokens * headDim;
        NumericOptions.requireHeap("eval-synthetic", "--tokens x --head-dim", head, 4L * 5 * head);
        long budget = (long) Math.ceil((1 - sparsity) * tokens);
        long selected = 0;
        for (var method : methodList) {
            selected += (long) queries * (method == io.csattention.baseline.AttentionMethod.FULL ? tokens : budget);
        }
        long outputs = (long) queries * headDim * (methodList.size() + 1);
        NumericOptions.requireHeap("eval-synthetic", "--queries x --tokens", (long) queries * tokens,
                4L * (5 * head + outputs + selected));
    }

    @Override
    public Integer call() throws Exception {
        var settings = options.settings();
        var decodeBackend = options.backend();
        var methodList = options.methods();
        OutputDir.check(out);
        requireHeap(settings.sparsity(), methodList);
        var head = SyntheticContext.generate(new SyntheticContext.Spec(tokens, headDim, queries, dataSeed, ropeBase,
                ropeStyle, topics, needles));
        var kernels = Kernels.preferred();
        RopeInfo rope = positionFree ? null : new RopeInfo(ropeBase, ropeStyle, head.prefillQueryPositions(), tokens,
                decodeSpan);
        List<MethodResult> results = TensorEvaluation.run(kernels, new TensorEvaluation.Inputs(head.keys(),
                head.values(), head.prefillQueries(), head.queries(), rope, head.queryPositions()), methodList,
                settings, decodeBackend);
        ObjectNode context = EvalReport.object();
        context.put("tokens", tokens).put("head_dim", headDim).put("queries", queries).put("data_seed", dataSeed)
                .put("rope_base", ropeBase).put("sparsity", settings.sparsity())
                .put("kv_bytes", 8L * tokens * headDim).put("kernels", kernels.name());
        EvalReport.finish(spec.commandLine().getOut(), String.format(Locale.ROOT,
                "eval-synthetic: N=%d d=%d queries=%d sparsity=%s kernels=%s device=%s", tokens, headDim, queries,
                settings.sparsity(), kernels.name(), decodeBackend.name()), results, context, out, queries, headDim,
                options.json);
        return 0;
    }
}
