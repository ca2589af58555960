package io.csattention.jobs;

import io.csattention.model.LlamaModel;
import io.csattention.model.Sampler;
import io.csattention.model.Session;
import io.csattention.model.Tokenizer;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The demo's model-level sample: the bundled stories260K checkpoint (jobs/src/main/resources/models/README.md)
 * extracted from the jar, a stand-in tokenizer for it ({@link #writeStandInTokenizer}), and contexts and questions
 * the model writes itself (BOS, then seeded samples), as the text tables
 * {@link io.csattention.spark.CSAttention#buildIndexes(Dataset, String, String, java.util.Map)} and
 * {@link io.csattention.spark.CSAttention#generate} read.
 */
final class ModelContexts {

    static final String RESOURCE = "/models/stories260K.bin";
    static final int BOS = 1;

    static final StructType CONTEXTS = new StructType()
            .add("context_id", DataTypes.StringType, false)
            .add("text", DataTypes.StringType, false);

    static final StructType QUESTIONS = new StructType()
            .add("question_id", DataTypes.LongType, false)
            .add("context_id", DataTypes.StringType, false)
            .add("text", DataTypes.StringType, false);

    /** The stand-in's first piece after the byte pieces: ids 259..511 are U+0100..U+01FC, one character each. */
    static final char FIRST_PIECE = '\u0100';

    private ModelContexts() {
    }

    /** Copies the bundled model out of the class path into {@code dir} (Spark executors read it from a file). */
    static Path extractBundledModel(Path dir) throws IOException {
        Path file = dir.resolve("stories260K.bin");
        try (InputStream in = ModelContexts.class.getResourceAsStream(RESOURCE)) {
            if (in == null) {
                throw new IOException("bundled model must be on the class path; resource=" + RESOURCE);
            }
            Files.copy(in, file);
        }
        return file;
    }

    /**
     * Writes a llama2.c tokenizer.bin for stories260K. The model's own 512-piece vocabulary (llama2.c's tok512.bin)
     * is not bundled, so this is a stand-in of its layout: {@code <unk>}, BOS, EOS, the 256 byte pieces at ids
     * 3..258 (where SentencePiece's byte fallback puts them), and ids 259..511 as the single characters
     * U+0100..U+01FC in place of the model's learned pieces. Text written with it encodes back to the same ids (after
     * BOS and the space SentencePiece adds in front), except where a sampled byte piece is not UTF-8 on its own (it
     * decodes to U+FFFD), so the demo's text tables hold the model's own samples; the answers' text spells the
     * model's pieces as those characters.
     */
    static Path writeStandInTokenizer(Path dir) throws IOException {
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        out.writeBytes(le(6));
        for (int i = 0; i < 512; i++) {
            String piece = i < 3 ? List.of("<unk>", "\n<s>\n", "\n</s>\n").get(i)
                    : i < 259 ? String.format("<0x%02X>", i - 3) : String.valueOf((char) (FIRST_PIECE + i - 259));
            byte[] utf8 = piece.getBytes(java.nio.charset.StandardCharsets.UTF_8);
            out.writeBytes(le(Float.floatToIntBits(0f)));
            out.writeBytes(le(utf8.length));
            out.writeBytes(utf8);
        }
        return Files.write(dir.resolve("stories260K.stand-in-tokenizer.bin"), out.toByteArray());
    }

    private static byte[] le(int v) {
        return java.nio.ByteBuffer.allocate(4).order(java.nio.ByteOrder.LITTLE_ENDIAN).putInt(v).array();
    }

    /** {@code count} token sequences the model samples after BOS (temperature 1, seeded), BOS first. */
    static List<int[]> sample(LlamaModel model, int count, int tokens, long seed) {
        List<int[]> out = new ArrayList<>(count);
        for (int c = 0; c < count; c++) {
            Sampler sampler = new Sampler(1.0f, 1.0f, seed * 1_000_003L + c);
            Session session = model.newSession();
            int[] sequence = new int[tokens];
            sequence[0] = BOS;
            float[] logits = session.prefill(new int[] {BOS});
            for (int i = 1; i < tokens; i++) {
                sequence[i] = sampler.sample(logits);
                if (i + 1 < tokens) {
                    logits = session.decode(sequence[i]);
                }
            }
            out.add(sequence);
        }
        return out;
    }

    /**
     * The questions of each of {@code contexts} contexts: {@code perContext} sequences of {@code tokens} ids the model
     * samples after BOS (seeded per context), BOS dropped, since a question continues its context.
     */
    static List<List<int[]>> questionSamples(LlamaModel model, int contexts, int perContext, int tokens, long seed) {
        List<List<int[]>> out = new ArrayList<>(contexts);
        for (int c = 0; c < contexts; c++) {
            List<int[]> questions = new ArrayList<>(perContext);
            for (int[] sampled : sample(model, perContext, tokens + 1, seed + 7919L * (c + 1))) {
                questions.add(Arrays.copyOfRange(sampled, 1, sampled.length));
            }
            out.add(questions);
        }
        return out;
    }

    /** Contexts as text: rows (context_id, text), each the tokenizer's decoding of a sampled sequence. */
    static Dataset<Row> contexts(SparkSession spark, List<int[]> contexts, Tokenizer tokenizer) {
        List<Row> rows = new ArrayList<>();
        for (int c = 0; c < contexts.size(); c++) {
            rows.add(RowFactory.create(contextId(c), tokenizer.decode(contexts.get(c))));
        }
        return spark.createDataFrame(rows, CONTEXTS);
    }

    /** Questions of each context as text: rows (question_id, context_id, text), ids numbered per context. */
    static Dataset<Row> questions(SparkSession spark, List<List<int[]>> perContext, Tokenizer tokenizer) {
        List<Row> rows = new ArrayList<>();
        for (int c = 0; c < perContext.size(); c++) {
            for (int q = 0; q < perContext.get(c).size(); q++) {
                rows.add(RowFactory.create((long) c * 1000 + q, contextId(c),
                        tokenizer.decode(perContext.get(c).get(q))));
            }
        }
        return spark.createDataFrame(rows, QUESTIONS);
    }

    static String contextId(int c) {
        return "story-" + c;
    }
}
