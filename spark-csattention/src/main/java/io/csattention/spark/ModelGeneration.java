package io.csattention.spark;

import io.csattention.baseline.AttentionMethod;
import io.csattention.core.CSAttentionSettings;
import io.csattention.core.KeyValueCache;
import io.csattention.model.Generation;
import io.csattention.model.LlamaModel;
import io.csattention.model.Sampler;
import io.csattention.model.Session;
import org.apache.spark.api.java.function.FlatMapFunction;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/**
 * Model-level generation on an executor, for one context with all its questions: tokenize the context (a text table)
 * and prefill it once, build the attention index once ({@link Session#useAttention}), then per question a fork of
 * that session ({@link Session#forkWithAttention}, which shares the index) reads the question's tokens (its text
 * tokenized without BOS) and decodes up to {@code maxNewTokens} tokens. Greedy at temperature 0, otherwise sampled
 * with a seed derived from the question id, so the answers do not depend on the partitioning or on retries. Bad input
 * (an unknown context, empty text or tokens, more tokens than the model's context length) fails the job with one line
 * naming the context or question, or, with {@code onError=route}, becomes the question's error row.
 */
final class ModelGeneration implements FlatMapFunction<Row, Row> {

    static final String ATTENTION = "attention";
    static final String MAX_NEW_TOKENS = "maxNewTokens";
    /** Generate maxNewTokens even past the model's end-of-sequence and end-of-turn ids (default false). */
    static final String IGNORE_EOS = "ignoreEos";
    static final String TEMPERATURE = "temperature";
    static final String TOP_P = "topP";
    static final String SAMPLING_SEED = "samplingSeed";
    /** Questions of one context decoded together, each step reading the weights once for all (default 16). */
    static final String BATCH_SIZE = "batchSize";
    /** Format text questions with the model's chat template (LlamaModel.chatPrompt; default false). */
    static final String CHAT_TEMPLATE = "chatTemplate";
    /** How each context's KV cache stores keys and values: f16 (default), bf16 or f32. */
    static final String KV_PRECISION = "kvPrecision";

    /** Answers, one row per question; with {@code route}, generated may be null and an error column follows. */
    static StructType answers(boolean route) {
        StructType out = new StructType()
                .add("context_id", DataTypes.StringType, false)
                .add("question_id", DataTypes.LongType, false)
                .add("attention", DataTypes.StringType, false)
                .add("generated", DataTypes.createArrayType(DataTypes.IntegerType, false), route)
                .add("text", DataTypes.StringType, true)
                .add("prefill_nanos", DataTypes.LongType, false)
                .add("index_nanos", DataTypes.LongType, false)
                .add("decode_nanos", DataTypes.LongType, false);
        return route ? out.add("error", DataTypes.StringType, true) : out;
    }

    /** The generation options (the rest of the map are index settings). */
    record Settings(AttentionMethod attention, int maxNewTokens, float temperature, float topP, long seed,
                    boolean ignoreEos, String tokenizer, CSAttentionSettings index, boolean chatTemplate,
                    int batchSize, KeyValueCache.Precision kvPrecision) implements Serializable {

        /** Removes the generation keys from {@code options} and parses them. */
        static Settings take(Map<String, String> options, java.util.function.Function<Map<String, String>,
                CSAttentionSettings> rest) {
            Map<String, String> o = new TreeMap<>(String.CASE_INSENSITIVE_ORDER);
            o.putAll(options);
            AttentionMethod attention = AttentionMethod.parse(o.getOrDefault(ATTENTION, "csattention")
                    .trim().toLowerCase(Locale.ROOT));
            int maxNew = Integer.parseInt(o.getOrDefault(MAX_NEW_TOKENS, "16").trim());
            if (maxNew < 1) {
                throw new IllegalArgumentException("maxNewTokens must be > 0; maxNewTokens=" + maxNew);
            }
            float temperature = Float.parseFloat(o.getOrDefault(TEMPERATURE, "0").trim());
            float topP = Float.parseFloat(o.getOrDefault(TOP_P, "0.9").trim());
            long seed = Long.parseLong(o.getOrDefault(SAMPLING_SEED, "42").trim());
            new Sampler(temperature, topP, seed);
            String ignore = o.getOrDefault(IGNORE_EOS, "false").trim();
            if (!ignore.equalsIgnoreCase("true") && !ignore.equalsIgnoreCase("false")) {
                throw new IllegalArgumentException("ignoreEos must be true or false; ignoreEos=" + ignore);
            }
            String chat = o.getOrDefault(CHAT_TEMPLATE, "false").trim();
            if (!chat.equalsIgnoreCase("true") && !chat.equalsIgnoreCase("false")) {
                throw new IllegalArgumentException("chatTemplate must be true or false; chatTemplate=" + chat);
            }
            String tokenizer = o.get(ModelPrefill.TOKENIZER);
            String batchText = o.getOrDefault(BATCH_SIZE, "16").trim();
            int batch;
            try {
                batch = Integer.parseInt(batchText);
            } catch (NumberFormatException e) {
                batch = 0;
            }
            if (batch < 1 || batch > 4096) {
                throw new IllegalArgumentException("batchSize must be an integer in [1, 4096]; batchSize="
                        + batchText);
            }
            String kvText = o.getOrDefault(KV_PRECISION, KeyValueCache.Precision.DEFAULT.id());
            KeyValueCache.Precision kv;
            try {
                kv = KeyValueCache.Precision.parse(kvText);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("kvPrecision must be one of f16, bf16, f32; kvPrecision="
                        + kvText);
            }
            for (String key : List.of(ATTENTION, MAX_NEW_TOKENS, TEMPERATURE, TOP_P, SAMPLING_SEED, IGNORE_EOS,
                    CHAT_TEMPLATE, ModelPrefill.TOKENIZER, BATCH_SIZE, KV_PRECISION)) {
                o.remove(key);
            }
            return new Settings(attention, maxNew, temperature, topP, seed, Boolean.parseBoolean(ignore), tokenizer,
                    rest.apply(o), Boolean.parseBoolean(chat), batch, kv);
        }

        Sampler sampler(long questionId) {
            return new Sampler(temperature, topP, seed ^ (questionId * 0x9E3779B97F4A7C15L));
        }
    }

    private final ModelPrefill.ModelSource source;
    private final boolean contextText;
    private final boolean questionText;
    private final Settings settings;
    /** onError=route: bad input becomes error rows instead of failing the job. */
    private final boolean routeErrors;
    /** Where the contexts are prefilled (option device); decode runs on the CPU. */
    private final io.csattention.device.Backends.Mode device;

    ModelGeneration(String modelPath, boolean contextText, boolean questionText, Settings settings,
                    boolean routeErrors, io.csattention.device.Backends.Mode device) {
        this.source = new ModelPrefill.ModelSource(modelPath, settings.tokenizer());
        this.contextText = contextText;
        this.questionText = questionText;
        this.settings = settings;
        this.routeErrors = routeErrors;
        this.device = device;
    }

    /**
     * {@code row}: context_id, tokens, text, context_found boolean, questions array&lt;struct&lt;question_id long,
     * tokens array&lt;int&gt;, text string&gt;&gt;.
     */
    @Override
    public Iterator<Row> call(Row row) {
        String contextId = row.getString(0);
        List<Row> questions = row.getList(4);
        List<Row> answers = new ArrayList<>(questions.size());
        LlamaModel model = source.load();
        int[] context;
        try {
            if (row.isNullAt(3)) {
                throw new IllegalArgumentException("context_id of a question must name a row of the contexts table; "
                        + "context_id=" + contextId);
            }
            context = ModelPrefill.contextTokens(row, contextText, model, source);
        } catch (IllegalArgumentException bad) {
            if (!routeErrors) {
                throw bad;
            }
            for (Row question : questions) {
                answers.add(error(contextId, question.getLong(0), bad.getMessage()));
            }
            return answers.iterator();
        }
        long started = System.nanoTime();
        Session session = model.newSession(settings.kvPrecision());
        float[] contextLogits = ModelPrefill.prefill(session, context, device);
        long prefillNanos = System.nanoTime() - started;
        started = System.nanoTime();
        session.useAttention(settings.attention(), settings.index());
        long indexNanos = System.nanoTime() - started;
        // the valid questions step together (Generation.runBatch: the same tokens as one at a time); a bad one
        // keeps its place as an error row
        Row[] out = new Row[questions.size()];
        List<Integer> valid = new ArrayList<>();
        List<Generation.Request> requests = new ArrayList<>();
        int[] stop = settings.ignoreEos() ? new int[0] : model.stopTokens();
        for (int i = 0; i < questions.size(); i++) {
            Row question = questions.get(i);
            long questionId = question.getLong(0);
            try {
                int[] tokens = questionTokens(question, model, context.length);
                requests.add(new Generation.Request(tokens, settings.sampler(questionId), settings.maxNewTokens()));
                valid.add(i);
            } catch (IllegalArgumentException bad) {
                if (!routeErrors) {
                    throw bad;
                }
                out[i] = error(contextId, questionId, bad.getMessage());
            }
        }
        started = System.nanoTime();
        List<Generation.Result> results = requests.isEmpty() ? List.of()
                : Generation.runBatch(session, contextLogits, requests, settings.batchSize(), stop);
        long batchNanos = System.nanoTime() - started;
        long steps = 0;
        for (int j = 0; j < results.size(); j++) {
            steps += requests.get(j).prompt().length + results.get(j).tokens().length;
        }
        for (int j = 0; j < results.size(); j++) {
            int i = valid.get(j);
            long questionId = questions.get(i).getLong(0);
            int[] generated = results.get(j).tokens();
            // the question's share of the batch's time, by the steps it took
            long decodeNanos = steps == 0 ? 0 : batchNanos * (requests.get(j).prompt().length + generated.length)
                    / steps;
            String text = model.tokenizer().map(t -> t.decode(generated)).orElse(null);
            out[i] = routeErrors
                    ? RowFactory.create(contextId, questionId, settings.attention().id(), generated, text,
                            prefillNanos, indexNanos, decodeNanos, null)
                    : RowFactory.create(contextId, questionId, settings.attention().id(), generated, text,
                            prefillNanos, indexNanos, decodeNanos);
        }
        answers.addAll(java.util.Arrays.asList(out));
        return answers.iterator();
    }

    private Row error(String contextId, long questionId, String message) {
        return RowFactory.create(contextId, questionId, settings.attention().id(), null, null, 0L, 0L, 0L, message);
    }

    /**
     * A question's tokens: its tokens, or its text tokenized (with option chatTemplate: formatted as the model's chat
     * template's user turn) without the BOS that opens a sequence (the question continues the context). Fails naming the question on null or empty input and when the context, the question
     * and maxNewTokens exceed the model's context length.
     */
    private int[] questionTokens(Row question, LlamaModel model, int contextLength) {
        long questionId = question.getLong(0);
        int[] tokens;
        if (questionText) {
            if (question.isNullAt(2)) {
                throw new IllegalArgumentException("question text must not be null (question_id=" + questionId
                        + "); text=null");
            }
            String value = question.getString(2);
            if (value.isEmpty()) {
                throw new IllegalArgumentException("question text must hold at least one character (question_id="
                        + questionId + "); text=''");
            }
            io.csattention.model.Tokenizer tokenizer = source.tokenizerOf(model);
            // with chatTemplate the question is one user turn of the file's chat template, the assistant's opened
            int[] encoded = settings.chatTemplate() ? model.withTokenizer(tokenizer).chatPrompt(value)
                    : tokenizer.encode(value);
            int[] opening = tokenizer.encode("");
            boolean opens = encoded.length >= opening.length
                    && Arrays.equals(encoded, 0, opening.length, opening, 0, opening.length);
            tokens = opens ? Arrays.copyOfRange(encoded, opening.length, encoded.length) : encoded;
        } else {
            tokens = ModelPrefill.tokens(question, 1, "question_id=" + questionId);
            if (tokens.length == 0) {
                throw new IllegalArgumentException("question tokens must hold at least one token (question_id="
                        + questionId + "); tokens=[]");
            }
            for (int token : tokens) {
                if (token < 0 || token >= model.config().vocabSize()) {
                    throw new IllegalArgumentException("token ids must be in [0, " + model.config().vocabSize()
                            + ") (question_id=" + questionId + "); token=" + token);
                }
            }
        }
        long total = (long) contextLength + tokens.length + settings.maxNewTokens();
        if (total > model.config().contextLength()) {
            throw new IllegalArgumentException("context, question and maxNewTokens must fit the model's context "
                    + "length of " + model.config().contextLength() + " tokens (question_id=" + questionId
                    + "); tokens=" + total);
        }
        return tokens;
    }
}
