package io.csattention.spark;

import io.csattention.baseline.AttentionMethod;
import io.csattention.model.Generation;
import io.csattention.model.GgufFile;
import io.csattention.model.LlamaModel;
import io.csattention.model.ModelFiles;
import io.csattention.model.ModelFixture;
import io.csattention.model.Sampler;
import io.csattention.model.Session;
import io.csattention.model.Tokenizer;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Text contexts and text questions through Spark with GGUF files of modern structure and a real byte-level BPE
 * vocabulary ({@link ModelFixture#llama3()}: Llama 3 vocabulary, GQA 4:1, head size 64, {@code rope_freqs.weight};
 * {@link ModelFixture#qwen2()}: Q, K and V biases, the Qwen vocabulary, no BOS), written by the test and read by the
 * executors. The reference is the library run directly on the driver: {@link Session#prefill} of the context's tokens,
 * each question's tokens decoded on a {@link Session#forkWithAttention fork}, {@link Generation#run} one question at a
 * time. With {@code chatTemplate=true} the question's tokens are the file's chat template written out by hand here
 * from the template's Jinja source.
 */
class GgufTextSparkTest {

    static final long SEED = 37L;
    static final int NEW_TOKENS = 6;
    static final Map<String, String> INDEX = Map.of("sparsity", "0.75", "centroids", "8");
    static final List<String> WORDS = List.of("the", "model", "reads", "a", "long", "context", "and", "answers",
            "questions", "about", "it", "Spark", "executors", "don't", "we'll", "1234", "3.14", "café", "naïve",
            "日本語", "über", "  ", "\n", "(x)", "=>", "GGUF", "tokens", "attention", "sparse", "keys", "!");

    @TempDir
    static Path dir;

    static SparkSession spark;
    static final Map<String, Fixture> FIXTURES = new HashMap<>();
    static final Map<String, String> CONTEXTS = new TreeMap<>();
    static final Map<Long, String> QUESTIONS = new TreeMap<>();
    static final Map<Long, String> QUESTION_CONTEXT = new TreeMap<>();

    /** A fixture file, its model as the library loads it, and its BOS (-1 when its tokenizer adds none) and EOS. */
    record Fixture(String family, String path, LlamaModel model, Tokenizer tokenizer, int bos, int eos) {

        static Fixture of(String family, Path file) throws IOException {
            LlamaModel model = ModelFiles.load(file);
            GgufFile gguf = GgufFile.read(file);
            Tokenizer tokenizer = model.tokenizer().orElseThrow();
            int bos = family.equals("llama3") ? (int) gguf.integer("tokenizer.ggml.bos_token_id", -1) : -1;
            return new Fixture(family, file.toString(), model, tokenizer, bos,
                    (int) gguf.integer("tokenizer.ggml.eos_token_id", -1));
        }

        /** Plain text's question tokens: the encoding without the BOS that opens a sequence (Llama 3 adds one). */
        int[] questionTokens(String text) {
            return withoutBos(tokenizer.encode(text));
        }

        int[] withoutBos(int[] encoded) {
            if (bos < 0) {
                assertFalse(encoded.length > 0 && encoded[0] == tokenizer.encodeWithSpecials("<|endoftext|>")[0],
                        "Qwen2 adds no BOS");
                return encoded;
            }
            assertEquals(bos, encoded[0], "Llama 3 opens with <|begin_of_text|>");
            return Arrays.copyOfRange(encoded, 1, encoded.length);
        }

        /**
         * The chat prompt of one user question as the file's template renders it (with add_generation_prompt), written
         * out from the Jinja source in ModelFixture: Llama 3 trims the content, Qwen2 writes its default system turn.
         */
        int[] handWrittenChatPrompt(String question) {
            String text = family.equals("llama3")
                    ? "<|start_header_id|>user<|end_header_id|>\n\n" + question.strip()
                            + "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
                    : "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n" + question
                            + "<|im_end|>\n<|im_start|>assistant\n";
            return tokenizer.encodeWithSpecials(text);
        }
    }

    @BeforeAll
    static void fixtures() throws IOException {
        spark = SharedSpark.get();
        FIXTURES.put("llama3", Fixture.of("llama3", ModelFixture.llama3().write(dir.resolve("llama3.gguf"))));
        FIXTURES.put("qwen2", Fixture.of("qwen2", ModelFixture.qwen2().write(dir.resolve("qwen2.gguf"))));
        System.out.println("GgufTextSparkTest seed=" + SEED);
        SplittableRandom random = new SplittableRandom(SEED);
        for (int c = 0; c < 2; c++) {
            CONTEXTS.put("doc-" + c, words(random, 70));
            for (int q = 0; q < 3; q++) {
                long id = 10L * c + q;
                QUESTIONS.put(id, words(random, 5) + "?");
                QUESTION_CONTEXT.put(id, "doc-" + c);
            }
        }
    }

    /** {@code n} words of {@link #WORDS} (English, contractions, digits, accents, CJK, whitespace runs). */
    static String words(SplittableRandom random, int n) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < n; i++) {
            b.append(i == 0 ? "" : " ").append(WORDS.get(random.nextInt(WORDS.size())));
        }
        return b.toString();
    }

    static Dataset<Row> textContexts() {
        List<Row> rows = new ArrayList<>();
        CONTEXTS.forEach((id, text) -> rows.add(RowFactory.create(id, text)));
        return spark.createDataFrame(rows, TextSparkTest.TEXT_CONTEXTS);
    }

    static Dataset<Row> textQuestions() {
        List<Row> rows = new ArrayList<>();
        QUESTIONS.forEach((id, text) -> rows.add(RowFactory.create(id, QUESTION_CONTEXT.get(id), text)));
        return spark.createDataFrame(rows, TextSparkTest.TEXT_QUESTIONS);
    }

    static Dataset<Row> tokenContexts(Fixture f) {
        List<Row> rows = new ArrayList<>();
        CONTEXTS.forEach((id, text) -> rows.add(RowFactory.create(id, TextSparkTest.boxed(f.tokenizer.encode(text)))));
        return spark.createDataFrame(rows, TextSparkTest.TOKEN_CONTEXTS);
    }

    static Map<String, String> generation(String attention, String... more) {
        Map<String, String> options = new HashMap<>(INDEX);
        options.put("attention", attention);
        options.put("maxNewTokens", Integer.toString(NEW_TOKENS));
        for (int i = 0; i < more.length; i += 2) {
            options.put(more[i], more[i + 1]);
        }
        return options;
    }

    /** The library's answer: prefill the context's tokens, fork with the attention, read the question, generate. */
    static Generation.Result direct(LlamaModel model, Tokenizer tokenizer, String contextId, int[] question,
                                    AttentionMethod attention, int maxNewTokens, int[] stop) {
        Session session = model.newSession();
        session.prefill(tokenizer.encode(CONTEXTS.get(contextId)));
        session.useAttention(attention, CSAttentionOptions.parse(INDEX).settings());
        Session fork = session.forkWithAttention();
        float[] logits = null;
        for (int token : question) {
            logits = fork.decode(token);
        }
        return Generation.run(fork, logits, Sampler.greedy(), maxNewTokens, stop);
    }

    static Map<Long, Row> byQuestion(Dataset<Row> answers) {
        Map<Long, Row> out = new TreeMap<>();
        answers.collectAsList().forEach(r -> out.put(r.getAs("question_id"), r));
        return out;
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama3", "qwen2"})
    void textTablesGiveTheLibrarysAnswersWithBatchesOfOneAndSixteen(String family) {
        Fixture f = FIXTURES.get(family);
        for (String attention : List.of("csattention", "full")) {
            Map<Long, Row> one = byQuestion(CSAttention.generate(textContexts(), textQuestions(), f.path,
                    generation(attention, "batchSize", "1")));
            Map<Long, Row> sixteen = byQuestion(CSAttention.generate(textContexts(), textQuestions(), f.path,
                    generation(attention, "batchSize", "16")));
            assertEquals(QUESTIONS.keySet(), one.keySet());
            assertEquals(QUESTIONS.keySet(), sixteen.keySet());
            Set<String> distinct = new HashSet<>();
            for (long id : QUESTIONS.keySet()) {
                String what = family + " " + attention + " question " + id;
                int[] expected = direct(f.model, f.tokenizer, QUESTION_CONTEXT.get(id),
                        f.questionTokens(QUESTIONS.get(id)), AttentionMethod.parse(attention), NEW_TOKENS,
                        f.model.stopTokens()).tokens();
                assertArrayEquals(expected, TextSparkTest.ids(one.get(id)), what + " batchSize=1");
                assertEquals(f.tokenizer.decode(expected), one.get(id).getAs("text"), what + " batchSize=1");
                assertArrayEquals(TextSparkTest.ids(one.get(id)), TextSparkTest.ids(sixteen.get(id)),
                        what + ": batchSize=16 gives batchSize=1's ids");
                assertEquals(one.get(id).<String>getAs("text"), sixteen.get(id).getAs("text"), what);
                assertEquals(attention, one.get(id).getAs("attention"));
                distinct.add(Arrays.toString(expected));
            }
            assertTrue(distinct.size() > 1, family + " " + attention + ": the answers depend on the question");
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama3", "qwen2"})
    void aTextBuildIndexesEachContextsTokensAsTheTokensBuildDoes(String family) throws IOException {
        Fixture f = FIXTURES.get(family);
        String fromText = dir.resolve("index-text-" + family).toString();
        String fromTokens = dir.resolve("index-tokens-" + family).toString();
        IndexSet.Manifest text = CSAttention.buildIndexes(textContexts(), f.path, fromText, INDEX);
        IndexSet.Manifest tokens = CSAttention.buildIndexes(tokenContexts(f), f.path, fromTokens, INDEX);
        assertEquals(2 * f.model.config().layers() * f.model.config().kvHeads(), text.heads().size());
        HadoopConf conf = new HadoopConf(spark.sparkContext().hadoopConfiguration());
        Map<String, byte[]> tokenFiles = new HashMap<>();
        for (IndexSet.Entry e : tokens.heads()) {
            tokenFiles.put(e.key().toString(), IndexSet.readFile(conf, fromTokens, e));
        }
        for (IndexSet.Entry e : text.heads()) {
            assertEquals(f.tokenizer.encode(CONTEXTS.get(e.contextId())).length, e.keys(), e.key().toString());
            assertArrayEquals(tokenFiles.get(e.key().toString()), IndexSet.readFile(conf, fromText, e),
                    e.key().toString());
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama3", "qwen2"})
    void chatTemplateQuestionsAreTheTemplatesPromptWithoutItsBos(String family) {
        Fixture f = FIXTURES.get(family);
        Map<Long, Row> answers = byQuestion(CSAttention.generate(textContexts(), textQuestions(), f.path,
                generation("csattention", "chatTemplate", "true")));
        for (long id : QUESTIONS.keySet()) {
            String question = QUESTIONS.get(id);
            int[] prompt = f.model.chatPrompt(question);
            assertArrayEquals(f.handWrittenChatPrompt(question), prompt, family + " question " + id);
            if (f.bos >= 0) {
                assertEquals(1, Arrays.stream(prompt).filter(t -> t == f.bos).count(), "one BOS: " + id);
            }
            int[] tokens = f.withoutBos(prompt);
            int[] expected = direct(f.model, f.tokenizer, QUESTION_CONTEXT.get(id), tokens,
                    AttentionMethod.CSATTENTION, NEW_TOKENS, f.model.stopTokens()).tokens();
            assertArrayEquals(expected, TextSparkTest.ids(answers.get(id)), family + " question " + id);
            assertEquals(f.tokenizer.decode(expected), answers.get(id).getAs("text"), family + " question " + id);
        }
    }

    /**
     * As ModelFixtureTest does for the library: generate freely, take the first token that question 0's free run
     * produces at step 2 or later for the first time, and write a fixture whose output rows of that token and EOS are
     * swapped. Every other logit is unchanged, so greedy generation through Spark follows the free run and stops where
     * it would have produced that token; with ignoreEos it writes EOS there and goes on.
     */
    @ParameterizedTest
    @ValueSource(strings = {"llama3", "qwen2"})
    void greedyGenerationThroughSparkStopsAtTheEndOfTurnTheFixtureMakesLikely(String family) throws IOException {
        Fixture free = FIXTURES.get(family);
        int maxNew = 12;
        long first = QUESTIONS.keySet().iterator().next();
        int[] firstTokens = free.withoutBos(free.model.chatPrompt(QUESTIONS.get(first)));
        int[] run = direct(free.model, free.tokenizer, QUESTION_CONTEXT.get(first), firstTokens,
                AttentionMethod.CSATTENTION, maxNew, new int[0]).tokens();
        int step = 2;
        while (step < run.length && TextSparkTest.boxed(Arrays.copyOf(run, step)).contains(run[step])) {
            step++;
        }
        assertTrue(step < run.length, "the free run must produce a new token at step 2 or later; run="
                + Arrays.toString(run));
        assertFalse(TextSparkTest.boxed(run).contains(free.eos), "the free run never meets EOS");
        ModelFixture biasedFixture = family.equals("llama3") ? ModelFixture.llama3() : ModelFixture.qwen2();
        Fixture biased = Fixture.of(family, biasedFixture.swapOutputRows(free.eos, run[step])
                .write(dir.resolve(family + "-eos.gguf")));
        assertTrue(Arrays.binarySearch(biased.model.stopTokens(), biased.eos) >= 0, "EOS is a stop token");

        Map<String, String> options = generation("csattention", "chatTemplate", "true",
                "maxNewTokens", Integer.toString(maxNew));
        Map<Long, Row> answers = byQuestion(CSAttention.generate(textContexts(), textQuestions(), biased.path,
                options));
        int[] stopped = TextSparkTest.ids(answers.get(first));
        assertArrayEquals(Arrays.copyOf(run, step), stopped, family + ": stops where the free run met the token");
        assertEquals(biased.tokenizer.decode(stopped), answers.get(first).getAs("text"));
        for (long id : QUESTIONS.keySet()) {
            Generation.Result expected = direct(biased.model, biased.tokenizer, QUESTION_CONTEXT.get(id),
                    biased.withoutBos(biased.model.chatPrompt(QUESTIONS.get(id))), AttentionMethod.CSATTENTION,
                    maxNew, biased.model.stopTokens());
            assertArrayEquals(expected.tokens(), TextSparkTest.ids(answers.get(id)), family + " question " + id);
        }

        options.put("ignoreEos", "true");
        int[] ignored = TextSparkTest.ids(byQuestion(CSAttention.generate(textContexts(), textQuestions(),
                biased.path, options)).get(first));
        assertEquals(maxNew, ignored.length, "ignoreEos generates maxNewTokens");
        assertArrayEquals(Arrays.copyOf(run, step), Arrays.copyOf(ignored, step));
        assertEquals(biased.eos, ignored[step], "with ignoreEos, EOS itself is generated");
    }
}
