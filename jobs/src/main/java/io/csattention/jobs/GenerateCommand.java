package io.csattention.jobs;

import io.csattention.baseline.AttentionMethod;
import io.csattention.model.Generation;
import io.csattention.model.LlamaModel;
import io.csattention.model.Sampler;
import io.csattention.model.Session;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.util.Arrays;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;

/**
 * {@code generate}: prefill a prompt, then decode {@code --max-new-tokens} tokens with the chosen attention. The last
 * line of stdout is the generated token ids (prompt excluded), space-separated, with the text above it when the model
 * has a tokenizer; prefill and decode tokens/s go to stderr.
 */
@Command(name = "generate", mixinStandardHelpOptions = true,
        description = "Generate tokens from a prompt with full or sparse attention.")
final class GenerateCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Mixin
    ModelOptions model;

    @Mixin
    SettingsOptions attention;

    @ArgGroup(exclusive = true, multiplicity = "1")
    Prompt prompt;

    static final class Prompt {
        @Option(names = "--prompt-tokens", paramLabel = "IDS", description = "prompt token ids, e.g. \"1 2 3\"")
        String tokens;

        @Option(names = "--prompt", paramLabel = "TEXT", description = "prompt text (needs a tokenizer)")
        String text;
    }

    @Option(names = "--max-new-tokens", required = true, description = "tokens to generate")
    int maxNewTokens;

    @Option(names = "--attention", defaultValue = "full",
            description = "full, csattention, quest, keycluster or oracle (default ${DEFAULT-VALUE})")
    String attentionMethod;

    @Option(names = "--temperature", defaultValue = "0", description = "0 for greedy (default ${DEFAULT-VALUE})")
    float temperature;

    @Option(names = "--top-p", defaultValue = "0.9",
            description = "nucleus sampling threshold (default ${DEFAULT-VALUE})")
    float topP;

    @Option(names = "--seed", defaultValue = "42", description = "sampling seed (default ${DEFAULT-VALUE})")
    long seed;

    @Option(names = "--ignore-eos", description = "generate --max-new-tokens even past the model's end-of-sequence "
            + "and end-of-turn ids (by default generation stops there, the stop token not printed)")
    boolean ignoreEos;

    @Option(names = "--chat", description = "format --prompt as one user question with the model's chat template "
            + "(tokenizer.chat_template, recognized as llama3, chatml, llama2 or mistral) and open the assistant's "
            + "turn")
    boolean chat;

    @Override
    public Integer call() throws Exception {
        AttentionMethod method = AttentionMethod.parse(attentionMethod);
        if (chat && prompt.tokens != null) {
            throw new IllegalArgumentException("--chat formats a text question and needs --prompt; --prompt-tokens="
                    + prompt.tokens);
        }
        LlamaModel loaded = model.load();
        if (prompt.text != null && loaded.tokenizer().isEmpty()) {
            throw new IllegalArgumentException("--prompt needs a tokenizer (GGUF vocabulary or --tokenizer); model="
                    + model.model);
        }
        int[] promptTokens = prompt.tokens != null ? ModelOptions.parseTokens(prompt.tokens, loaded)
                : chat ? loaded.chatPrompt(prompt.text) : loaded.tokenizer().orElseThrow().encode(prompt.text);
        loaded.checkLength((long) promptTokens.length + maxNewTokens);
        Sampler sampler = new Sampler(temperature, topP, seed);

        Session session = loaded.newSession();
        long started = System.nanoTime();
        float[] logits = session.prefill(promptTokens);
        long prefillNanos = System.nanoTime() - started;
        started = System.nanoTime();
        session.useAttention(method, attention.settings());
        long indexNanos = System.nanoTime() - started;
        started = System.nanoTime();
        Generation.Result result = Generation.run(session, logits, sampler, maxNewTokens,
                ignoreEos ? new int[0] : loaded.stopTokens());
        int[] generated = result.tokens();
        long decodeNanos = System.nanoTime() - started;

        PrintWriter err = spec.commandLine().getErr();
        err.printf(Locale.ROOT, "prefill: %d tokens, %.1f tokens/s; index (%s): %.1f ms; decode: %d tokens, %.1f "
                        + "tokens/s%n", promptTokens.length, promptTokens.length / (prefillNanos / 1e9), method.id(),
                indexNanos / 1e6, Math.max(0, generated.length - 1),
                Math.max(0, generated.length - 1) / Math.max(decodeNanos / 1e9, 1e-9));
        if (result.stopped()) {
            err.printf(Locale.ROOT, "stopped at an end-of-sequence id after %d tokens%n", generated.length);
        }
        err.flush();
        PrintWriter out = spec.commandLine().getOut();
        loaded.tokenizer().ifPresent(t -> out.println(t.decode(generated)));
        out.println(Arrays.stream(generated).mapToObj(Integer::toString).collect(Collectors.joining(" ")));
        out.flush();
        return 0;
    }
}
