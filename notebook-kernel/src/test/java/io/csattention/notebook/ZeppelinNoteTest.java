package io.csattention.notebook;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.csattention.model.Tokenizer;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Runs every paragraph of {@code notebooks/csattention-walkthrough.zpln} in order, as Zeppelin's Spark interpreter
 * group does: {@code %spark} through a Scala 2.13 REPL on Spark's class path ({@link ScalaCells}; Spark's own
 * {@code spark-repl} module is not served here, the compiler's REPL that it builds on is), {@code %sql} through the
 * session after Zeppelin's form substitution ({@code ${name=default}} becomes its default; Zeppelin substitutes forms
 * in {@code %sql} only, the Spark interpreter's form type being native), {@code %md} rendered by Zeppelin and not
 * run. A paragraph of any other interpreter, or one that fails, fails the test. The sample goes to a temporary
 * directory instead of the note's {@code /tmp/csattention-notebook}, as a user would type it into the note.
 */
class ZeppelinNoteTest {

    private static final Path NOTE = Path.of("..", "notebooks", "csattention-walkthrough.zpln");
    private static final Pattern FORM = Pattern.compile("\\$\\{([^}]*)}");
    /** The note's sample directory: the first paragraph's {@code val base} and the forms' defaults. */
    private static final String NOTE_BASE = "/tmp/csattention-notebook";
    /** The sample's tensor-level size (Notebooks.writeSample) and the note's sparsity, stated independently. */
    private static final int CONTEXTS = 2;
    private static final int KV_HEADS = 2;
    private static final int LAYERS = 1;
    private static final int KEYS = 2048;
    private static final int QUERIES = 16;
    private static final int MODEL_CONTEXTS = 2;
    private static final int QUESTIONS = 2;
    private static final double SPARSITY = 0.95;
    /** The note's model level: stories260K's vocabulary size and the note's maxNewTokens. */
    private static final int VOCAB = 512;
    private static final int NEW_TOKENS = 16;

    @TempDir
    static Path dir;

    private static SparkSession spark;
    private static NotebookSession session;

    @BeforeAll
    static void start() {
        long start = System.nanoTime();
        session = NotebookSession.start();
        spark = session.spark();
        System.err.printf("zeppelin: session and Scala REPL started in %.1f s%n", (System.nanoTime() - start) / 1e9);
    }

    @AfterAll
    static void stop() {
        session.close();
        spark.stop();
    }

    @Test
    void everyParagraphRunsInOrder() throws Exception {
        JsonNode note = new ObjectMapper().readTree(NOTE.toFile());
        Map<String, String> printed = new LinkedHashMap<>();
        Map<String, Walkthrough.Shown> tables = new LinkedHashMap<>();
        assertTrue(note.get("paragraphs").get(1).get("text").asText().contains("val base = \"" + NOTE_BASE + "\""),
                "the first %spark paragraph names the sample directory");
        // run as a user who typed another directory into the first paragraph and the forms: concurrent builds on
        // one machine do not share the sample
        String base = dir.resolve("csattention-notebook").toString();
        for (JsonNode paragraph : note.get("paragraphs")) {
            String text = paragraph.get("text").asText().replace(NOTE_BASE, base);
            String title = paragraph.path("title").asText();
            String interpreter = text.startsWith("%") ? text.substring(1, text.indexOf('\n')).strip() : "spark";
            String code = text.startsWith("%") ? text.substring(text.indexOf('\n') + 1) : text;
            long start = System.nanoTime();
            switch (interpreter) {
                case "md" -> {
                }
                case "spark" -> printed.put(title, scala(title, code));
                case "sql" -> tables.put(title, sql(title, substituteForms(code)));
                default -> fail("paragraph '" + title + "' uses %" + interpreter + ", which this test cannot run");
            }
            System.err.printf("zeppelin paragraph %%%s %.1f s: %s%n", interpreter, (System.nanoTime() - start) / 1e9,
                    title);
        }
        assertEquals(7, printed.size(), "%spark paragraphs: " + printed.keySet());
        assertEquals(7, tables.size(), "%sql paragraphs: " + tables.keySet());

        assertEquals(CONTEXTS * LAYERS * KV_HEADS, titled(tables, "Index sizes").rowCount(),
                "one row per context, layer and KV head");
        Walkthrough.Shown decoded = titled(tables, "Outputs and");
        assertEquals(8, decoded.rowCount());
        int attended = column(decoded, "attended");
        for (int r = 1; r <= decoded.rowCount(); r++) {
            assertEquals(String.valueOf((int) Math.ceil((1 - SPARSITY) * KEYS)), decoded.cells().get(r)[attended],
                    "every query attends to the budget, ceil((1 - sparsity) N) keys");
        }
        Walkthrough.Shown same = titled(tables, "The job's outputs");
        assertEquals(String.valueOf(CONTEXTS * LAYERS * KV_HEADS * QUERIES), same.cells().get(1)[column(same, "rows")]);
        assertEquals(same.cells().get(1)[column(same, "rows")], same.cells().get(1)[column(same, "same_as_sql")],
                "the decode job's outputs equal the SQL function's");

        String badInput = titled(printed, "6. Bad input");
        List<String> lines = Arrays.stream(badInput.split("\\R")).filter(l -> !l.isBlank()).toList();
        assertEquals(3, lines.stream().filter(l -> l.startsWith("error: ")).count(), badInput);
        assertTrue(lines.stream().anyMatch(l -> l.startsWith("error: ") && l.contains("no-such-index")), badInput);
        // the SQL function's line names the row (its context, layer and head), as the decode job's names its query_id
        assertTrue(lines.stream().anyMatch(l -> l.startsWith("error: ")
                && l.matches(".*; head=7 \\(context_id=\\S+ layer=\\d+ head=7\\)")), badInput);
        assertTrue(lines.contains("error: --sparsity must be in (0, 1); --sparsity=1.5"), badInput);
        assertFalse(badInput.contains("\tat "), "no stack trace: " + badInput);

        Walkthrough.Shown answers = titled(tables, "Answers' text");
        assertEquals(MODEL_CONTEXTS * QUESTIONS, answers.rowCount(),
                "an answer per question, with sparse and with full attention");
        for (String name : List.of("question", "csattention", "full_attention", "same_tokens")) {
            column(answers, name);
        }
        assertEquals(List.of("question_id", "context_id", "text"),
                Arrays.asList(spark.read().parquet(base + "/questions.parquet").columns()), "questions as text");
        assertEquals(List.of("context_id", "text"),
                Arrays.asList(spark.read().parquet(base + "/model-contexts.parquet").columns()), "contexts as text");
        Tokenizer tokenizer = Tokenizer.readLlama2c(Path.of(base, "stories260K.stand-in-tokenizer.bin"), VOCAB);
        for (String file : List.of("answers.parquet", "answers-full.parquet")) {
            List<Row> rows = spark.read().parquet(base + "/" + file).collectAsList();
            assertEquals(MODEL_CONTEXTS * QUESTIONS, rows.size(), file);
            for (Row row : rows) {
                int[] generated = row.<Integer>getList(row.fieldIndex("generated")).stream()
                        .mapToInt(Integer::intValue).toArray();
                assertTrue(generated.length >= 1 && generated.length <= NEW_TOKENS, file + ": " + generated.length
                        + " ids generated, maxNewTokens " + NEW_TOKENS);
                String text = row.getAs("text");
                assertEquals(standInDecoding(generated), text, file + ": an answer's text spells its ids");
                assertEquals(tokenizer.decode(generated), text, file + ": and is the tokenizer's decoding");
            }
        }
        String charts = titled(printed, "Recall and error by sparsity");
        assertEquals(3, charts.split("%html <img src=\"data:image/png;base64,", -1).length - 1, "three charts");
    }

    @Test
    void formsAreSubstitutedInSqlOnlyWithTheirDefaults() {
        assertEquals("SELECT * FROM t WHERE a = 5 AND p = '/x/y'",
                substituteForms("SELECT * FROM t WHERE a = ${a=5} AND p = '${path=/x/y}'"));
        assertEquals("SELECT 'b'", substituteForms("SELECT '${choice=b,a|b|c}'"));
        IllegalArgumentException noDefault = assertThrows(IllegalArgumentException.class,
                () -> substituteForms("SELECT ${name}"));
        assertEquals("a form must have a default to run without Zeppelin's UI; form=${name}",
                noDefault.getMessage());
    }

    /**
     * The decoding of {@code ids} in the stand-in vocabulary, spelled out from its layout (ModelContexts
     * .writeStandInTokenizer): 0 {@code <unk>}, 1 BOS (dropped), 2 EOS {@code "\n</s>\n"}, 3..258 the bytes
     * 0x00..0xFF, 259..511 the characters U+0100..U+01FC; bytes and characters joined as UTF-8.
     */
    static String standInDecoding(int[] ids) {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        for (int id : ids) {
            if (id == 0) {
                bytes.writeBytes("<unk>".getBytes(StandardCharsets.UTF_8));
            } else if (id == 2) {
                bytes.writeBytes("\n</s>\n".getBytes(StandardCharsets.UTF_8));
            } else if (id >= 3 && id < 259) {
                bytes.write(id - 3);
            } else if (id >= 259 && id < VOCAB) {
                bytes.writeBytes(String.valueOf((char) (0x100 + id - 259)).getBytes(StandardCharsets.UTF_8));
            } else if (id != 1) {
                fail("id outside the stand-in vocabulary of " + VOCAB + ": " + id);
            }
        }
        return bytes.toString(StandardCharsets.UTF_8);
    }

    @Test
    void standInDecodingSpellsTheLayout() {
        assertEquals("\u0100A\u01FC", standInDecoding(new int[] {1, 259, 3 + 'A', 511}));
        assertEquals("\u00e9", standInDecoding(new int[] {3 + 0xC3, 3 + 0xA9}), "byte pieces join as UTF-8");
    }

    /** The paragraph's output, as Zeppelin shows it; a failure is the test's. */
    private static String scala(String title, String code) {
        PrintStream original = System.out;
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        System.setOut(new PrintStream(captured, true, StandardCharsets.UTF_8));
        try {
            String echo = session.scala(code);
            return captured.toString(StandardCharsets.UTF_8) + echo;
        } catch (CellError e) {
            return fail("%spark paragraph '" + title + "' failed: " + e.getMessage()
                    + "\noutput:\n" + captured.toString(StandardCharsets.UTF_8));
        } finally {
            System.setOut(original);
        }
    }

    private static Walkthrough.Shown sql(String title, String statement) {
        try {
            return session.sql(statement, 50);
        } catch (CellError e) {
            return fail("%sql paragraph '" + title + "' failed: " + e.getMessage());
        }
    }

    /**
     * Zeppelin's simple forms: {@code ${name=default}} and {@code ${name=default,option|option}} become the default
     * (what Zeppelin runs before anyone edits the form); a form without a default cannot run unattended.
     */
    static String substituteForms(String sql) {
        Matcher form = FORM.matcher(sql);
        StringBuilder out = new StringBuilder();
        while (form.find()) {
            String body = form.group(1);
            int equals = body.indexOf('=');
            if (equals < 0 || body.substring(0, equals).contains(":")) {
                throw new IllegalArgumentException("a form must have a default to run without Zeppelin's UI; form="
                        + form.group());
            }
            String value = body.substring(equals + 1);
            int options = value.indexOf(',');
            form.appendReplacement(out, Matcher.quoteReplacement(options < 0 ? value : value.substring(0, options)));
        }
        form.appendTail(out);
        return out.toString();
    }

    private static int column(Walkthrough.Shown table, String name) {
        int index = Arrays.asList(table.cells().get(0)).indexOf(name);
        assertTrue(index >= 0, "column " + name + " in " + Arrays.toString(table.cells().get(0)));
        return index;
    }

    private static <T> T titled(Map<String, T> results, String titleStart) {
        return results.entrySet().stream().filter(e -> e.getKey().startsWith(titleStart)).map(Map.Entry::getValue)
                .findFirst()
                .orElseGet(() -> fail("no paragraph titled '" + titleStart + "...' in " + results.keySet()));
    }
}
