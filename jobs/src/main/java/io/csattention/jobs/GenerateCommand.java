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

import io.csattention.spark.CSAttention;
import io.csattention.spark.CSAttentionOptions;
import io.csattention.spark.ModelPrefill;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;

import java.io.PrintWriter;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Arrays;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;

/**
 * {@code generate}: prefill a prompt, then decode {@code --max-new-tokens} tokens with the chosen attention. The last
 * line of stdout is the generated token ids (prompt excluded), space-separated, with the text above it when the model
 * has a tokenizer; prefill and decode tokens/s go to stderr. The prefill runs where {@code --device} says
 * ({@link PrefillDeviceOption}, cpu by default), decode on the CPU. With {@code --contexts}, {@code --questions} and
 * {@code --out} instead of a prompt it is a Spark job: {@link CSAttention#generate} from Parquet to Parquet.
 */
@Command(name = "generate", mixinStandardHelpOptions = true,
        description = {"Generate tokens from a prompt with full or sparse attention; or, with --contexts, --questions "
                + "and --out, answer a questions Parquet table (question_id, context_id, text or tokens) about a "
                + "contexts Parquet table (context_id, text or tokens) on Spark, each context prefilled and indexed "
                + "once, and write context_id, question_id, attention, generated, text, prefill_nanos, index_nanos, "
                + "decode_nanos, [error] as Parquet."})
final class GenerateCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Mixin
    SparkJob.Logging logging;

    @Mixin
    ModelOptions model;

    @Mixin
    SettingsOptions attention;

    @Mixin
    PrefillDeviceOption device;

    @ArgGroup(exclusive = true, multiplicity = "1")
    Prompt prompt;

    static final class Prompt {
        @Option(names = "--prompt-tokens", paramLabel = "IDS", description = "prompt token ids, e.g. \"1 2 3\"")
        String tokens;

        @Option(names = "--prompt", paramLabel = "TEXT", description = "prompt text (needs a tokenizer)")
        String text;

        @ArgGroup(exclusive = false)
        Tables tables;
    }

    /** The Spark job's tables. */
    static final class Tables {
        @Option(names = "--contexts", required = true, description = "Contexts table (Parquet): context_id, and text "
                + "or tokens.")
        String contexts;

        @Option(names = "--questions", required = true, description = "Questions table (Parquet): question_id, "
                + "context_id, and text or tokens (a question continues its context; text is tokenized without BOS).")
        String questions;

        @Option(names = "--out", required = true, description = "Answers Parquet path (must not exist).")
        String out;

        @Option(names = "--on-error", description = "fail (default): a bad context or question fails the job naming "
                + "it; route: its answer row gets an error column and the rest are answered.")
        String onError;
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
        device.mode();  // a bad --device fails before any work
        if (prompt.tables != null) {
            return answerTables(AttentionMethod.parse(attentionMethod));
        }
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
        float[] logits = device.prefill(session, promptTokens);
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

    /** The Spark job: questions about contexts, Parquet in, Parquet out. */
    private int answerTables(AttentionMethod method) throws Exception {
        Tables tables = prompt.tables;
        if (!java.nio.file.Files.isRegularFile(model.model)) {
            throw new java.io.IOException("model file must exist; model=" + model.model);
        }
        Map<String, String> typed = new LinkedHashMap<>();
        Map<String, String> options = attention.options(typed);
        Flags.parse(options, typed);
        Flags.put(options, typed, CSAttentionOptions.ON_ERROR, tables.onError, "--on-error");
        if (spec.commandLine().getParseResult().hasMatchedOption("--gpu")) {
            throw new IllegalArgumentException("--gpu picks the GPU of a local prefill; the Spark job's tasks use the "
                    + "GPU they were assigned; --gpu=" + device.gpu);
        }
        // unset, the Spark setting device (spark.csattention.device, cpu by default) decides
        if (spec.commandLine().getParseResult().hasMatchedOption("--device")) {
            Flags.put(options, typed, CSAttentionOptions.DEVICE, device.mode().id(), "--device");
        }
        options.put("attention", method.id());
        options.put("maxNewTokens", Integer.toString(maxNewTokens));
        options.put("temperature", Float.toString(temperature));
        options.put("topP", Float.toString(topP));
        options.put("samplingSeed", Long.toString(seed));
        options.put("ignoreEos", Boolean.toString(ignoreEos));
        options.put("chatTemplate", Boolean.toString(chat));
        options.put("kvPrecision", model.kvPrecision().id());
        if (model.tokenizer != null) {
            options.put(ModelPrefill.TOKENIZER, model.tokenizer.toString());
        }
        PrintWriter stdout = spec.commandLine().getOut();
        SparkSession spark = SparkJob.session("csattention generate", logging);
        org.apache.hadoop.fs.Path outPath = new org.apache.hadoop.fs.Path(tables.out);
        org.apache.hadoop.fs.FileSystem fs = outPath.getFileSystem(spark.sparkContext().hadoopConfiguration());
        boolean existed = fs.exists(outPath);
        try {
            long start = System.nanoTime();
            spark.sparkContext().setJobGroup("csattention-generate", "csattention: generate " + tables.questions,
                    false);
            CSAttention.generate(spark.read().parquet(tables.contexts), spark.read().parquet(tables.questions),
                    model.model.toString(), options).write().parquet(tables.out);
            double seconds = (System.nanoTime() - start) / 1e9;
            Dataset<Row> written = spark.read().parquet(tables.out);
            long rows = written.count();
            long errors = java.util.Arrays.asList(written.columns()).contains("error")
                    ? written.filter("error is not null").count() : 0;
            stdout.printf(Locale.ROOT, "answered %d questions into %s in %.1f s (%d error rows)%n", rows - errors,
                    tables.out, seconds, errors);
            return 0;
        } catch (Exception e) {
            if (!existed) {
                // a failed write leaves its (empty) output directory behind; nothing half-written stays
                fs.delete(outPath, true);
            }
            Exception cause = SparkJob.unwrap(e);
            throw cause instanceof IllegalArgumentException bad ? Flags.named(bad, typed) : cause;
        } finally {
            spark.stop();
        }
    }
}
