package io.csattention.jobs;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.csattention.baseline.AttentionMethod;
import io.csattention.model.LlamaModel;
import io.csattention.model.ModelEvaluation;
import io.csattention.model.ModelEvaluation.MethodResult;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

/**
 * {@code eval-model}: how closely each attention method follows full attention on a model's own contexts (see
 * {@link ModelEvaluation} for the protocol). A table on stdout; with {@code --json} the last line is one JSON object
 * whose keys {@code agreement} and {@code recall} map each method to its teacher-forced agreement and mean recall.
 */
@Command(name = "eval-model", mixinStandardHelpOptions = true,
        description = "Accuracy of sparse attention against full attention on a model's own sampled contexts.")
final class EvalModelCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Mixin
    ModelOptions model;

    @Mixin
    SettingsOptions attention;

    @Option(names = "--contexts", defaultValue = "4",
            description = "contexts sampled from the model (default ${DEFAULT-VALUE})")
    int contexts;

    @Option(names = "--context-tokens", defaultValue = "448",
            description = "tokens per context (default ${DEFAULT-VALUE})")
    int contextTokens;

    @Option(names = "--continuations", defaultValue = "1",
            description = "continuations per context (default ${DEFAULT-VALUE})")
    int continuations;

    @Option(names = "--new-tokens", defaultValue = "64",
            description = "tokens per continuation (default ${DEFAULT-VALUE})")
    int newTokens;

    @Option(names = "--methods", defaultValue = "full,csattention,quest,keycluster,oracle", split = ",",
            description = "methods to compare (default ${DEFAULT-VALUE})")
    List<String> methods;

    @Option(names = "--seed", defaultValue = "1234",
            description = "seed of the sampled contexts (default ${DEFAULT-VALUE})")
    long seed;

    @Option(names = "--json", description = "print one JSON object as the last line of stdout")
    boolean json;

    @Override
    public Integer call() throws Exception {
        LlamaModel loaded = model.load();
        List<AttentionMethod> parsed = methods.stream().map(AttentionMethod::parse).distinct().toList();
        ModelEvaluation.Options options = new ModelEvaluation.Options(contexts, contextTokens, continuations,
                newTokens, parsed, attention.settings(), seed);
        ModelEvaluation.Report report = ModelEvaluation.run(loaded, options);
        PrintWriter out = spec.commandLine().getOut();
        out.printf(Locale.ROOT, "model %s: %d contexts x %d tokens, %d continuation positions, sparsity %.2f%n",
                model.model.getFileName(), contexts, contextTokens, report.positions(), attention.sparsity);
        out.printf(Locale.ROOT, "prefill %.0f tokens/s, the same tokens decoded one by one %.0f tokens/s (prefill %.1fx "
                        + "faster per token)%n",
                report.prefillTokensPerSecond(), report.decodeTokensPerSecond(),
                report.prefillTokensPerSecond() / report.decodeTokensPerSecond());
        out.printf(Locale.ROOT, "%-12s %9s %9s %9s %8s %9s %11s %10s %10s%n", "method", "agreement", "greedy",
                "greedy-pre", "recall",
                "out-error", "perplexity", "ppl-delta", "tokens/s");
        for (MethodResult r : report.methods().values()) {
            out.printf(Locale.ROOT, "%-12s %9.3f %9.3f %9.3f %8.3f %9.3f %11.3f %+10.3f %10.0f%n",
                    r.method().id(), r.agreement(), r.greedyAgreement(), r.greedyPrefix(), r.recall(), r.outputError(), r.perplexity(),
                    r.perplexityDelta(), r.decodeTokensPerSecond());
        }
        if (json) {
            out.println(new ObjectMapper().writeValueAsString(toJson(report)));
        }
        out.flush();
        return 0;
    }

    private ObjectNode toJson(ModelEvaluation.Report report) {
        ObjectMapper mapper = new ObjectMapper();
        ObjectNode root = mapper.createObjectNode();
        root.put("model", model.model.toString());
        root.put("contexts", contexts);
        root.put("context_tokens", contextTokens);
        root.put("continuations", continuations);
        root.put("new_tokens", newTokens);
        root.put("sparsity", attention.sparsity);
        root.put("seed", seed);
        root.set("settings", mapper.valueToTree(attention.settings()));
        root.put("positions", report.positions());
        root.put("prefill_tokens_per_s", report.prefillTokensPerSecond());
        root.put("decode_tokens_per_s", report.decodeTokensPerSecond());
        root.put("prefill_speedup", report.prefillTokensPerSecond() / report.decodeTokensPerSecond());
        ObjectNode agreement = root.putObject("agreement");
        ObjectNode recall = root.putObject("recall");
        ObjectNode greedy = root.putObject("greedy_agreement");
        ObjectNode greedyPrefix = root.putObject("greedy_prefix");
        ObjectNode error = root.putObject("output_error");
        ObjectNode perplexity = root.putObject("perplexity");
        ObjectNode perplexityDelta = root.putObject("perplexity_delta");
        ObjectNode decode = root.putObject("decode_tokens_per_s_by_method");
        ObjectNode indexBytes = root.putObject("index_bytes");
        ObjectNode recallByLayerHead = root.putObject("recall_by_layer_head");
        ObjectNode errorByLayerHead = root.putObject("output_error_by_layer_head");
        for (MethodResult r : report.methods().values()) {
            String id = r.method().id();
            agreement.put(id, r.agreement());
            recall.put(id, r.recall());
            greedy.put(id, r.greedyAgreement());
            greedyPrefix.put(id, r.greedyPrefix());
            error.put(id, r.outputError());
            perplexity.put(id, r.perplexity());
            perplexityDelta.put(id, r.perplexityDelta());
            decode.put(id, r.decodeTokensPerSecond());
            indexBytes.put(id, r.indexBytes());
            recallByLayerHead.set(id, mapper.valueToTree(r.recallByLayerHead()));
            errorByLayerHead.set(id, mapper.valueToTree(r.outputErrorByLayerHead()));
        }
        return root;
    }
}
