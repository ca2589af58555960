package io.csattention.spark;

import io.csattention.baseline.AttentionMethod;
import io.csattention.model.Generation;
import io.csattention.model.LlamaModel;
import io.csattention.model.ModelFiles;
import io.csattention.model.Sampler;
import io.csattention.model.Session;
import io.csattention.model.Tokenizer;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Text contexts and text questions through Spark ({@code CSAttention.buildIndexes} with a model and
 * {@code CSAttention.generate}) with the bundled stories260K checkpoint and a llama2.c tokenizer written by the test
 * ({@link #writeTokenizer}: the checkpoint's own 512-piece vocabulary is not bundled). The references: the same
 * tokens as a tokens table, and the library run directly (Session, Generation) on the driver.
 */
class TextSparkTest {

    static final long SEED = 23L;
    static final int NEW_TOKENS = 8;
    static final Map<String, String> INDEX = Map.of("sparsity", "0.75", "centroids", "8");

    static final StructType TEXT_CONTEXTS = new StructType()
            .add("context_id", DataTypes.StringType)
            .add("text", DataTypes.StringType);
    static final StructType TEXT_QUESTIONS = new StructType()
            .add("question_id", DataTypes.LongType)
            .add("context_id", DataTypes.StringType)
            .add("text", DataTypes.StringType);
    static final StructType TOKEN_CONTEXTS = new StructType()
            .add("context_id", DataTypes.StringType)
            .add("tokens", DataTypes.createArrayType(DataTypes.IntegerType));
    static final StructType TOKEN_QUESTIONS = new StructType()
            .add("question_id", DataTypes.LongType)
            .add("context_id", DataTypes.StringType)
            .add("tokens", DataTypes.createArrayType(DataTypes.IntegerType));

    @TempDir
    static Path dir;

    static SparkSession spark;
    static String modelPath;
    static String tokenizerPath;
    static LlamaModel model;
    static Tokenizer tokenizer;
    static Map<String, String> contextText = new HashMap<>();
    static Map<Long, String> questionText = new HashMap<>();
    static Map<Long, String> questionContext = new HashMap<>();

    @BeforeAll
    static void sample() throws IOException, URISyntaxException {
        spark = SharedSpark.get();
        modelPath = Path.of(TextSparkTest.class.getResource("/models/stories260K.bin").toURI()).toString();
        tokenizerPath = writeTokenizer(dir).toString();
        model = ModelFiles.load(Path.of(modelPath));
        tokenizer = Tokenizer.readLlama2c(Path.of(tokenizerPath), model.config().vocabSize());
        model = model.withTokenizer(tokenizer);
        System.out.println("TextSparkTest seed=" + SEED);
        SplittableRandom random = new SplittableRandom(SEED);
        for (int c = 0; c < 2; c++) {
            contextText.put("ctx-" + c, text(random, 90));
            for (int q = 0; q < 2; q++) {
                long id = c * 10L + q;
                questionText.put(id, text(random, 6));
                questionContext.put(id, "ctx-" + c);
            }
        }
    }

    /**
     * A llama2.c tokenizer.bin of stories260K's layout: {@code <unk>}, BOS, EOS, the 256 byte pieces at ids 3..258
     * (as SentencePiece's byte fallback places them), then 253 pieces: ids 259..360 the single characters U+0100.. and
     * ids 361..511 two-character pieces of those (scored, so that encoding merges), a stand-in for the model's own
     * vocabulary, which is not bundled.
     */
    static Path writeTokenizer(Path directory) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(le(8));
        for (int i = 0; i < 512; i++) {
            String piece;
            if (i < 3) {
                piece = List.of("<unk>", "\n<s>\n", "\n</s>\n").get(i);
            } else if (i < 259) {
                piece = String.format("<0x%02X>", i - 3);
            } else if (i < 361) {
                piece = String.valueOf((char) (0x100 + i - 259));
            } else {
                int k = i - 361;
                piece = String.valueOf((char) (0x100 + k % 17)) + (char) (0x100 + k / 17);
            }
            byte[] utf8 = piece.getBytes(StandardCharsets.UTF_8);
            out.writeBytes(le(Float.floatToIntBits(i >= 361 ? -(i - 361) : 0f)));
            out.writeBytes(le(utf8.length));
            out.writeBytes(utf8);
        }
        return Files.write(directory.resolve("tokenizer.bin"), out.toByteArray());
    }

    private static byte[] le(int v) {
        return ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(v).array();
    }

    /** {@code chars} characters: mostly the stand-in vocabulary's, some ASCII (byte pieces) and spaces. */
    static String text(SplittableRandom random, int chars) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < chars; i++) {
            int r = random.nextInt(10);
            b.append(r < 7 ? (char) (0x100 + random.nextInt(30)) : r < 9 ? (char) ('a' + random.nextInt(26)) : ' ');
        }
        return b.toString();
    }

    static Dataset<Row> textContexts() {
        List<Row> rows = new ArrayList<>();
        contextText.forEach((id, text) -> rows.add(RowFactory.create(id, text)));
        return spark.createDataFrame(rows, TEXT_CONTEXTS);
    }

    static Dataset<Row> textQuestions() {
        List<Row> rows = new ArrayList<>();
        questionText.forEach((id, text) -> rows.add(RowFactory.create(id, questionContext.get(id), text)));
        return spark.createDataFrame(rows, TEXT_QUESTIONS);
    }

    /** The contexts' tokens: the tokenizer on the driver (BOS first). */
    static Dataset<Row> tokenContexts() {
        List<Row> rows = new ArrayList<>();
        contextText.forEach((id, text) -> rows.add(RowFactory.create(id, boxed(tokenizer.encode(text)))));
        return spark.createDataFrame(rows, TOKEN_CONTEXTS);
    }

    /** The questions' tokens: the tokenizer on the driver, without the BOS that opens a sequence. */
    static Dataset<Row> tokenQuestions() {
        List<Row> rows = new ArrayList<>();
        questionText.forEach((id, text) -> rows.add(RowFactory.create(id, questionContext.get(id),
                boxed(questionTokens(text)))));
        return spark.createDataFrame(rows, TOKEN_QUESTIONS);
    }

    static int[] questionTokens(String text) {
        int[] encoded = tokenizer.encode(text);
        assertEquals(1, encoded[0], "the tokenizer opens with BOS");
        return Arrays.copyOfRange(encoded, 1, encoded.length);
    }

    static Map<String, String> generation(String attention) {
        Map<String, String> options = new HashMap<>(INDEX);
        options.put("attention", attention);
        options.put("maxNewTokens", Integer.toString(NEW_TOKENS));
        options.put("tokenizer", tokenizerPath);
        return options;
    }

    /** The library's answer: prefill the context's tokens, fork with the attention, read the question, generate. */
    static int[] direct(LlamaModel m, String contextId, long questionId, AttentionMethod attention) {
        Session session = m.newSession();
        session.prefill(tokenizer.encode(contextText.get(contextId)));
        session.useAttention(attention, CSAttentionOptions.parse(INDEX).settings());
        Session fork = session.forkWithAttention();
        float[] logits = null;
        for (int token : questionTokens(questionText.get(questionId))) {
            logits = fork.decode(token);
        }
        return Generation.run(fork, logits, Sampler.greedy(), NEW_TOKENS, m.stopTokens()).tokens();
    }

    static int[] ids(Row r) {
        return r.getList(r.fieldIndex("generated")).stream().mapToInt(v -> (Integer) v).toArray();
    }

    @Test
    void textTablesGiveTheLibrarysAnswersAsTextAndTheTokenTablesAnswers() {
        for (String attention : List.of("csattention", "full")) {
            List<Row> fromText = CSAttention.generate(textContexts(), textQuestions(), modelPath,
                    generation(attention)).collectAsList();
            List<Row> fromTokens = CSAttention.generate(tokenContexts(), tokenQuestions(), modelPath,
                    generation(attention)).collectAsList();
            assertEquals(4, fromText.size());
            Map<Long, Row> tokensById = new HashMap<>();
            fromTokens.forEach(r -> tokensById.put(r.getAs("question_id"), r));
            for (Row r : fromText) {
                long id = r.getAs("question_id");
                String what = attention + " question " + id;
                int[] expected = direct(model, r.getAs("context_id"), id, AttentionMethod.parse(attention));
                assertArrayEquals(expected, ids(r), what);
                assertEquals(tokenizer.decode(expected), r.getAs("text"), what);
                assertArrayEquals(ids(tokensById.get(id)), ids(r), what);
                assertEquals(tokensById.get(id).<String>getAs("text"), r.getAs("text"), what);
            }
        }
    }

    @Test
    void fullAttentionOnTextMatchesAnArgmaxLoopOverTheForwardPass() {
        List<Row> rows = CSAttention.generate(textContexts(), textQuestions(), modelPath, generation("full"))
                .collectAsList();
        for (Row r : rows) {
            long id = r.getAs("question_id");
            Session session = model.newSession();
            float[] logits = session.prefill(tokenizer.encode(contextText.get(r.<String>getAs("context_id"))));
            for (int token : questionTokens(questionText.get(id))) {
                logits = session.decode(token);
            }
            int[] expected = new int[NEW_TOKENS];
            for (int i = 0; i < NEW_TOKENS; i++) {
                expected[i] = Sampler.argmax(logits);
                logits = session.decode(expected[i]);
            }
            assertArrayEquals(expected, ids(r), "question " + id);
        }
    }

    @Test
    void aTextBuildWritesTheIndexFilesOfTheTokensBuild() throws IOException {
        String fromText = dir.resolve("index-text").toString();
        String fromTokens = dir.resolve("index-tokens").toString();
        Map<String, String> options = new HashMap<>(INDEX);
        options.put("tokenizer", tokenizerPath);
        IndexSet.Manifest text = CSAttention.buildIndexes(textContexts(), modelPath, fromText, options);
        IndexSet.Manifest tokens = CSAttention.buildIndexes(tokenContexts(), modelPath, fromTokens, INDEX);
        int heads = model.config().layers() * model.config().kvHeads();
        assertEquals(2 * heads, text.heads().size());
        HadoopConf conf = new HadoopConf(spark.sparkContext().hadoopConfiguration());
        Map<String, byte[]> tokenFiles = new HashMap<>();
        for (IndexSet.Entry e : tokens.heads()) {
            tokenFiles.put(e.key().toString(), IndexSet.readFile(conf, fromTokens, e));
        }
        for (IndexSet.Entry e : text.heads()) {
            assertEquals(e.keys(), tokenizer.encode(contextText.get(e.contextId())).length, e.key().toString());
            assertArrayEquals(tokenFiles.get(e.key().toString()), IndexSet.readFile(conf, fromText, e),
                    e.key().toString());
        }
    }

    @Test
    void aTableWithBothOrNeitherOfTextAndTokensIsRefused() {
        Dataset<Row> both = tokenContexts().withColumn("text", org.apache.spark.sql.functions.lit("x"));
        Dataset<Row> neither = tokenContexts().drop("tokens");
        assertEquals("model contexts table must have exactly one of the columns text and tokens; "
                        + "columns=[context_id, tokens, text]",
                assertThrows(IllegalArgumentException.class, () -> CSAttention.buildIndexes(both, modelPath,
                        dir.resolve("never").toString(), INDEX)).getMessage());
        assertEquals("model contexts table must have exactly one of the columns text and tokens; "
                        + "columns=[context_id]",
                assertThrows(IllegalArgumentException.class, () -> CSAttention.generate(neither, textQuestions(),
                        modelPath, generation("full"))).getMessage());
        assertEquals("questions table must have exactly one of the columns text and tokens; columns=[question_id, "
                        + "context_id, text, tokens]",
                assertThrows(IllegalArgumentException.class, () -> CSAttention.generate(textContexts(),
                        textQuestions().withColumn("tokens", org.apache.spark.sql.functions.array()), modelPath,
                        generation("full"))).getMessage());
        assertTrue(Files.notExists(dir.resolve("never")), "nothing written");
    }

    @Test
    void badTextFailsNamingTheRowOrBecomesAnErrorRowWithRoute() throws IOException {
        String tooLong = "\u0120".repeat(model.config().contextLength());
        Dataset<Row> contexts = spark.createDataFrame(List.of(RowFactory.create("ok", contextText.get("ctx-0")),
                RowFactory.create("long", tooLong)), TEXT_CONTEXTS);
        Dataset<Row> questions = spark.createDataFrame(List.of(RowFactory.create(1L, "ok", "\u0101b"),
                RowFactory.create(2L, "ok", ""), RowFactory.create(3L, "long", "\u0101")), TEXT_QUESTIONS);
        Map<String, String> route = generation("full");
        route.put("onError", "route");
        Map<Long, Row> rows = new HashMap<>();
        CSAttention.generate(contexts, questions, modelPath, route).collectAsList()
                .forEach(r -> rows.put(r.getAs("question_id"), r));
        assertEquals(3, rows.size());
        assertNull(rows.get(1L).getAs("error"));
        assertEquals(NEW_TOKENS, ids(rows.get(1L)).length);
        assertEquals("question text must hold at least one character (question_id=2); text=''",
                rows.get(2L).getAs("error"));
        assertNull(rows.get(2L).getAs("generated"));
        assertEquals("text must fit the model's context length of 512 tokens (context_id=long); tokens=514",
                rows.get(3L).getAs("error"));

        Dataset<Row> empty = questions.filter("question_id = 2");
        assertEquals("question text must hold at least one character (question_id=2); text=''",
                rootMessage(assertThrows(Exception.class, () -> CSAttention.generate(contexts, empty, modelPath,
                        generation("full")).collectAsList())));
        String index = dir.resolve("index-long").toString();
        Map<String, String> options = new HashMap<>(INDEX);
        options.put("tokenizer", tokenizerPath);
        assertEquals("text must fit the model's context length of 512 tokens (context_id=long); tokens=514",
                rootMessage(assertThrows(Exception.class, () -> CSAttention.buildIndexes(contexts, modelPath, index,
                        options))));
        assertTrue(IndexSet.latest(hadoopFs(index), new org.apache.hadoop.fs.Path(index)).isEmpty(),
                "no index set committed");
    }

    @Test
    void textWithoutATokenizerIsOneLineNamingTheModel() {
        Map<String, String> options = generation("full");
        options.remove("tokenizer");
        assertEquals("text needs the model's tokenizer (a GGUF vocabulary, or option tokenizer with a llama2.c "
                        + "checkpoint's tokenizer.bin); model=" + modelPath,
                rootMessage(assertThrows(Exception.class, () -> CSAttention.generate(textContexts(), textQuestions(),
                        modelPath, options).collectAsList())));
    }

    private static org.apache.hadoop.fs.FileSystem hadoopFs(String path) {
        try {
            return new org.apache.hadoop.fs.Path(path).getFileSystem(spark.sparkContext().hadoopConfiguration());
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    static String rootMessage(Throwable e) {
        Throwable cause = e;
        while (cause.getCause() != null) {
            cause = cause.getCause();
        }
        return cause.getMessage();
    }

    static List<Integer> boxed(int[] ids) {
        return Arrays.stream(ids).boxed().toList();
    }
}
