package io.csattention.spark;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Executes the SQL of the notebooks under {@code notebooks/} (Jupyter cells tagged {@code sql}, Zeppelin
 * {@code %sql} paragraphs) against the shared local session, after building the index the notebooks' build cell
 * builds, on tables written here.
 */
class NotebooksTest {

    private static final Path NOTEBOOKS = Path.of("..", "notebooks");
    private static final Pattern TRIPLE_QUOTED = Pattern.compile("f\"\"\"(.*?)\"\"\"", Pattern.DOTALL);
    private static final Pattern ZEPPELIN_FORM = Pattern.compile("\\$\\{(\\w+)=[^}]*}");

    @TempDir
    static Path dir;

    private static Map<String, String> paths;

    @BeforeAll
    static void writeTablesAndBuild() throws IOException {
        SparkSession spark = SharedSpark.get();
        TestTensors data = new TestTensors(2, 1, 2, 200, 16, 21L);
        String contexts = dir.resolve("contexts.parquet").toString();
        String queries = dir.resolve("queries.parquet").toString();
        String index = dir.resolve("index").toString();
        data.contextsTable(spark).write().parquet(contexts);
        data.queriesTable(spark, 3).write().parquet(queries);
        // the notebooks' build cell: spark.read.parquet(contexts).write.format("csattention")...save(index)
        spark.read().parquet(contexts).write().format("csattention").option("sparsity", "0.95").option("centroids", "16")
                .mode("overwrite").save(index);
        paths = Map.of("contexts_path", contexts, "queries_path", queries, "index_path", index);
    }

    @Test
    void jupyterSqlCellsRun() throws IOException {
        JsonNode notebook = new ObjectMapper().readTree(NOTEBOOKS.resolve("csattention-walkthrough.ipynb").toFile());
        List<String> statements = new ArrayList<>();
        for (JsonNode cell : notebook.get("cells")) {
            boolean tagged = false;
            for (JsonNode tag : cell.path("metadata").path("tags")) {
                tagged |= tag.asText().equals("sql");
            }
            if (!tagged) {
                continue;
            }
            Matcher matcher = TRIPLE_QUOTED.matcher(String.join("", texts(cell.get("source"))));
            assertTrue(matcher.find(), "a sql cell holds spark.sql(f\"\"\"...\"\"\")");
            String sql = matcher.group(1);
            for (var entry : paths.entrySet()) {
                sql = sql.replace("{" + entry.getKey() + "}", entry.getValue());
            }
            statements.add(sql.strip());
        }
        runAll(statements);
    }

    @Test
    void zeppelinSqlParagraphsRun() throws IOException {
        JsonNode note = new ObjectMapper().readTree(NOTEBOOKS.resolve("csattention-walkthrough.zpln").toFile());
        List<String> statements = new ArrayList<>();
        for (JsonNode paragraph : note.get("paragraphs")) {
            String text = paragraph.get("text").asText();
            if (!text.startsWith("%sql")) {
                continue;
            }
            Matcher form = ZEPPELIN_FORM.matcher(text.substring("%sql".length()));
            StringBuilder sql = new StringBuilder();
            while (form.find()) {
                form.appendReplacement(sql, Matcher.quoteReplacement(paths.get(form.group(1))));
            }
            form.appendTail(sql);
            statements.add(sql.toString().strip());
        }
        runAll(statements);
    }

    private static void runAll(List<String> statements) {
        assertEquals(5, statements.size(), "SQL cells: " + statements);
        SparkSession spark = SharedSpark.get();
        List<Row> last = List.of();
        for (String sql : statements) {
            last = spark.sql(sql).collectAsList();
            if (sql.startsWith("SELECT * FROM heads")) {
                assertEquals(4, last.size(), "one row per context and KV head");
            }
        }
        assertFalse(last.isEmpty(), "the decode cell returns rows");
        Row first = last.get(0);
        assertEquals(16, first.getList(first.fieldIndex("output")).size());
        assertEquals((int) Math.ceil(0.05 * 200), first.getInt(first.fieldIndex("attended")));
    }

    private static List<String> texts(JsonNode source) {
        List<String> out = new ArrayList<>();
        source.forEach(line -> out.add(line.asText()));
        return out;
    }
}
