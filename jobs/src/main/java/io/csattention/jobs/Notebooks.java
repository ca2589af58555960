package io.csattention.jobs;

import io.csattention.model.LlamaModel;
import io.csattention.model.ModelFiles;
import io.csattention.model.Tokenizer;
import org.apache.spark.sql.SparkSession;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;

/**
 * What the walkthroughs under {@code notebooks/} call from the jar: their own small sample (the demo's generator)
 * and the one-line form of an error, the same line the command line prints.
 */
public final class Notebooks {

    /** Marks a directory written by {@link #writeSample}, so that a rerun may replace it and nothing else. */
    static final String MARKER = ".csattention-notebook-sample";

    /** The tensor-level sample: contexts x layers x KV heads, tokens per context, head dim, queries per head. */
    public static final int CONTEXTS = 2;
    public static final int LAYERS = 1;
    public static final int KV_HEADS = 2;
    public static final int TOKENS = 2048;
    public static final int HEAD_DIM = 64;
    public static final int QUERIES = 16;
    public static final long SEED = 2026;
    /** The model-level sample: stories260K contexts and questions (tokens the model samples, written as text). */
    public static final int MODEL_CONTEXTS = 2;
    public static final int MODEL_TOKENS = 192;
    public static final int QUESTIONS = 2;
    public static final int QUESTION_TOKENS = 8;

    private Notebooks() {
    }

    /**
     * Writes under {@code dir}: {@code contexts.parquet} and {@code queries.parquet} (tensor-level, the demo's seeded
     * generator), {@code model-contexts.parquet} ({@code context_id, text}) and {@code questions.parquet}
     * ({@code question_id, context_id, text}): what the bundled stories260K model writes itself, as the demo's text
     * tables, {@code stories260K.bin} and {@code stories260K.stand-in-tokenizer.bin}, the tokenizer the text tables
     * are read with (option {@code tokenizer}). A directory that exists must be empty or an earlier sample.
     * Prints what it wrote; returns {@code dir}.
     */
    public static String writeSample(SparkSession spark, String dir) throws IOException {
        Path root = Path.of(dir).toAbsolutePath();
        clear(root);
        Files.createDirectories(root);
        Files.writeString(root.resolve(MARKER), "written by io.csattention.jobs.Notebooks.writeSample\n");
        DemoContexts data = new DemoContexts(TOKENS, HEAD_DIM, SEED);
        String contexts = root.resolve("contexts.parquet").toString();
        String queries = root.resolve("queries.parquet").toString();
        DemoCommand.writeSample(spark, data, CONTEXTS, LAYERS, KV_HEADS, QUERIES, contexts, queries);

        Path modelFile = ModelContexts.extractBundledModel(root);
        Path tokenizerFile = ModelContexts.writeStandInTokenizer(root);
        LlamaModel model = ModelFiles.load(modelFile);
        Tokenizer tokenizer = Tokenizer.readLlama2c(tokenizerFile, model.config().vocabSize());
        List<int[]> contextTokens = ModelContexts.sample(model, MODEL_CONTEXTS, MODEL_TOKENS, SEED);
        List<List<int[]>> questions = ModelContexts.questionSamples(model, MODEL_CONTEXTS, QUESTIONS, QUESTION_TOKENS,
                SEED);
        ModelContexts.contexts(spark, contextTokens, tokenizer).write()
                .parquet(root.resolve("model-contexts.parquet").toString());
        ModelContexts.questions(spark, questions, tokenizer).write().parquet(root.resolve("questions.parquet").toString());
        PrintStream out = System.out;
        out.printf("sample under %s%n", root);
        out.printf("  contexts.parquet       %d contexts x %d layer x %d KV heads, N=%d keys, head_dim=%d%n",
                CONTEXTS, LAYERS, KV_HEADS, TOKENS, HEAD_DIM);
        out.printf("  queries.parquet        %d queries per head%n", QUERIES);
        out.printf("  model-contexts.parquet %d contexts x %d tokens of stories260K, as text%n", MODEL_CONTEXTS,
                MODEL_TOKENS);
        out.printf("  questions.parquet      %d questions x %d tokens per context, as text%n", QUESTIONS,
                QUESTION_TOKENS);
        out.printf("  stories260K.bin        the bundled model%n");
        out.printf("  %s the stand-in tokenizer (option tokenizer; the model's own is not bundled)%n",
                tokenizerFile.getFileName());
        return root.toString();
    }

    /**
     * The line the command line prints for {@code error} ({@code error: <what>; <name>=<value>}) when it is the
     * user's (bad input, a missing path, a wrong head, wrapped in Spark's exceptions or not); null otherwise.
     */
    public static String errorLine(Throwable error) {
        Throwable unwrapped = error instanceof Exception e ? SparkJob.unwrap(e) : error;
        return UserErrors.isUserError(unwrapped) ? "error: " + UserErrors.message(unwrapped) : null;
    }

    private static void clear(Path root) throws IOException {
        if (!Files.exists(root)) {
            return;
        }
        if (!Files.isDirectory(root)) {
            throw new IllegalArgumentException("sample directory must be a directory; dir=" + root);
        }
        boolean empty;
        try (Stream<Path> entries = Files.list(root)) {
            empty = entries.findAny().isEmpty();
        }
        if (empty) {
            return;
        }
        if (!Files.exists(root.resolve(MARKER))) {
            throw new IllegalArgumentException("sample directory must be empty or an earlier notebook sample (no "
                    + MARKER + " in it); dir=" + root);
        }
        try (Stream<Path> all = Files.walk(root)) {
            for (Path p : all.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
    }
}
