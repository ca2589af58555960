package io.csattention.notebook;

import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;

import java.util.concurrent.CompletableFuture;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * What a notebook runs against: a local Spark session with the CSAttention extension ({@code csattention_decode},
 * the {@code csattention} DataSource) and the Scala cells bound to it. Cells are Scala unless their first line is a
 * {@code %sql} (or {@code %%sql}) magic; {@code %spark} and {@code %scala} name the default.
 */
public final class NotebookSession implements AutoCloseable {

    private static final Pattern MAGIC = Pattern.compile("\\A\\s*%{1,2}(\\w+)[^\\n]*(?:\\n|\\z)");

    /** The interpreter a cell names. */
    public enum Language { SQL, SCALA }

    /** A cell split into its interpreter and its code. */
    public record Cell(Language language, String code) {
    }

    private final SparkSession spark;
    private final ScalaCells scala;

    private NotebookSession(SparkSession spark, ScalaCells scala) {
        this.spark = spark;
        this.scala = scala;
        scala.bind(spark);
    }

    /**
     * {@link #localSpark()} and the Scala compiler, started on two threads at once (each is mostly one thread's
     * work), then bound together.
     */
    public static NotebookSession start() {
        CompletableFuture<SparkSession> spark = CompletableFuture.supplyAsync(NotebookSession::localSpark,
                NotebookSession::newThread);
        CompletableFuture<ScalaCells> scala = CompletableFuture.supplyAsync(ScalaCells::new,
                NotebookSession::newThread);
        return spark.thenCombine(scala, NotebookSession::new).join();
    }

    private static void newThread(Runnable task) {
        Thread thread = new Thread(task, "notebook-start");
        thread.setDaemon(true);
        thread.start();
    }

    /** The session of a notebook on this machine: {@code local[*]}, the extension loaded, no UI. */
    public static SparkSession localSpark() {
        SparkSession spark = SparkSession.builder().appName("csattention notebook").master("local[*]")
                .config("spark.sql.extensions", "io.csattention.spark.CSAttentionExtensions")
                .config("spark.ui.enabled", "false")
                .config("spark.sql.shuffle.partitions", "4")
                .getOrCreate();
        spark.sparkContext().setLogLevel("WARN");
        return spark;
    }

    public SparkSession spark() {
        return spark;
    }

    /** {@code cell}'s interpreter (a leading magic line) and the code after it. */
    public static Cell parse(String cell) throws CellError {
        Matcher magic = MAGIC.matcher(cell);
        if (!magic.find()) {
            return new Cell(Language.SCALA, cell);
        }
        String code = cell.substring(magic.end());
        return switch (magic.group(1)) {
            case "sql" -> new Cell(Language.SQL, code);
            case "spark", "scala" -> new Cell(Language.SCALA, code);
            default -> throw new CellError("error: a cell's magic must be %sql, %spark or %scala; magic=%"
                    + magic.group(1), null);
        };
    }

    /** Runs one SQL statement and collects the first {@code rows} rows of its result. */
    public Walkthrough.Shown sql(String statement, int rows) throws CellError {
        try {
            return Walkthrough.show(spark.sql(statement.strip()), rows);
        } catch (Exception e) { // Spark's exceptions reach here undeclared (SparkException is checked)
            throw CellError.of(e);
        }
    }

    /** Runs Scala code; returns the REPL's echo of its definitions. */
    public String scala(String code) throws CellError {
        return scala.run(code);
    }

    @Override
    public void close() {
        scala.close();
    }
}
