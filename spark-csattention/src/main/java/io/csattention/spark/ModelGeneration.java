package io.csattention.spark;

import io.csattention.baseline.AttentionMethod;
import io.csattention.core.CSAttentionSettings;
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
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/**
 * Model-level generation on an executor, for one context with all its questions: prefill the context once, build
 * the attention index once ({@link Session#useAttention}), then per question a fork of that session
 * ({@link Session#forkWithAttention}, which shares the index) reads the question's tokens and decodes
 * {@code maxNewTokens} tokens. Greedy at temperature 0, otherwise sampled with a seed derived from the question id,
 * so the answers do not depend on the partitioning or on retries.
 */
final class ModelGeneration implements FlatMapFunction<Row, Row> {

    static final String ATTENTION = "attention";
    static final String MAX_NEW_TOKENS = "maxNewTokens";
    /** Generate maxNewTokens even past the model's end-of-sequence and end-of-turn ids (default false). */
    static final String IGNORE_EOS = "ignoreEos";
    static final String TEMPERATURE = "temperature";
    static final String TOP_P = "topP";
    static final String SAMPLING_SEED = "samplingSeed";
    /** Format text questions with the model's chat template (LlamaModel.chatPrompt; default false). */
    static final String CHAT_TEMPLATE = "chatTemplate";

    /** Answers, one row per question. */
    static final StructType ANSWERS = new StructType()
            .add("context_id", DataTypes.StringType, false)
            .add("question_id", DataTypes.LongType, false)
            .add("attention", DataTypes.StringType, false)
            .add("generated", DataTypes.createArrayType(DataTypes.IntegerType, false), false)
            .add("text", DataTypes.StringType, true)
            .add("prefill_nanos", DataTypes.LongType, false)
            .add("index_nanos", DataTypes.LongType, false)
            .add("decode_nanos", DataTypes.LongType, false);

    /** The generation options (the rest of the map are index settings). */
    record Settings(AttentionMethod attention, int maxNewTokens, float temperature, float topP, long seed,
                    boolean ignoreEos, CSAttentionSettings index, boolean chatTemplate) implements Serializable {

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
            for (String key : List.of(ATTENTION, MAX_NEW_TOKENS, TEMPERATURE, TOP_P, SAMPLING_SEED, IGNORE_EOS,
                    CHAT_TEMPLATE)) {
                o.remove(key);
            }
            return new Settings(attention, maxNew, temperature, topP, seed, Boolean.parseBoolean(ignore),
                    rest.apply(o), Boolean.parseBoolean(chat));
        }

        Sampler sampler(long questionId) {
            return new Sampler(temperature, topP, seed ^ (questionId * 0x9E3779B97F4A7C15L));
        }
    }

    private final String modelPath;
    private final Settings settings;

    ModelGeneration(String modelPath, Settings settings) {
        this.modelPath = modelPath;
        this.settings = settings;
    }

    /** {@code row}: context_id, tokens, questions array&lt;struct&lt;question_id long, tokens array&lt;int&gt;&gt;&gt;. */
    @Override
    public Iterator<Row> call(Row row) {
        String contextId = row.getString(0);
        if (row.isNullAt(1)) {
            throw new IllegalArgumentException("context_id of a question must name a row of the contexts table; "
                    + "context_id=" + contextId);
        }
        int[] context = ModelPrefill.tokens(row, 1);
        List<Row> questions = row.getList(2);
        LlamaModel model = ModelPrefill.model(modelPath);
        long started = System.nanoTime();
        Session session = model.newSession();
        float[] contextLogits = ModelPrefill.prefill(session, context);
        long prefillNanos = System.nanoTime() - started;
        started = System.nanoTime();
        session.useAttention(settings.attention(), settings.index());
        long indexNanos = System.nanoTime() - started;
        List<Row> answers = new ArrayList<>(questions.size());
        for (Row question : questions) {
            long questionId = question.getLong(0);
            int[] tokens = question.isNullAt(1) ? new int[0] : ModelPrefill.tokens(question, 1);
            model.checkLength((long) context.length + tokens.length + settings.maxNewTokens());
            started = System.nanoTime();
            Session fork = session.forkWithAttention();
            float[] logits = contextLogits;
            for (int token : tokens) {
                logits = fork.decode(token);
            }
            Sampler sampler = settings.sampler(questionId);
            int[] generated = Generation.run(fork, logits, sampler, settings.maxNewTokens(),
                    settings.ignoreEos() ? new int[0] : model.stopTokens()).tokens();
            long decodeNanos = System.nanoTime() - started;
            String text = model.tokenizer().map(t -> t.decode(generated)).orElse(null);
            answers.add(RowFactory.create(contextId, questionId, settings.attention().id(), generated, text,
                    prefillNanos, indexNanos, decodeNanos));
        }
        return answers.iterator();
    }
}
