package io.csattention.notebook;

import org.apache.spark.SparkException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** How the kernel reads a cell's magic and what a failed cell shows; expected texts written out here. */
class NotebookCellsTest {

    @Test
    void aLeadingMagicNamesTheInterpreterAndIsNotPartOfTheCode() throws CellError {
        assertEquals(new NotebookSession.Cell(NotebookSession.Language.SQL, "SELECT 1"),
                NotebookSession.parse("%sql\nSELECT 1"));
        assertEquals(new NotebookSession.Cell(NotebookSession.Language.SQL, "SELECT 1"),
                NotebookSession.parse("  %%sql\nSELECT 1"));
        assertEquals(new NotebookSession.Cell(NotebookSession.Language.SCALA, "val x = 1"),
                NotebookSession.parse("%spark\nval x = 1"));
        assertEquals(new NotebookSession.Cell(NotebookSession.Language.SCALA, "val x = 1 % 2"),
                NotebookSession.parse("val x = 1 % 2"));
        CellError unknown = assertThrows(CellError.class, () -> NotebookSession.parse("%pyspark\nprint(1)"));
        assertEquals("error: a cell's magic must be %sql, %spark or %scala; magic=%pyspark", unknown.getMessage());
    }

    @Test
    void aUserErrorInsideSparksExceptionsIsTheCommandLinesOneLine() {
        SparkException failedJob = new SparkException("Job aborted due to stage failure: Task 0 failed",
                new IllegalArgumentException("head must be a query head of context_id=c layer=0, in [0, 2) "
                        + "(2 KV heads x 1 query heads per KV head); head=7"));
        assertEquals("error: head must be a query head of context_id=c layer=0, in [0, 2) (2 KV heads x 1 query "
                + "heads per KV head); head=7", CellError.of(failedJob).getMessage());
        UncheckedIOException missing = new UncheckedIOException(new IOException(
                "index path must hold a committed index set; path=/x"));
        assertEquals("error: index path must hold a committed index set; path=/x",
                CellError.of(new SparkException("Job aborted", missing)).getMessage());
    }

    @Test
    void anythingElseKeepsItsStackTraceAndACellErrorPassesThrough() {
        CellError bug = CellError.of(new IllegalStateException("broken invariant"));
        assertTrue(bug.getMessage().startsWith("java.lang.IllegalStateException: broken invariant"), bug.getMessage());
        assertTrue(bug.getMessage().contains("\tat io.csattention.notebook.NotebookCellsTest"), bug.getMessage());
        CellError line = new CellError("error: x; y=1", null);
        assertSame(line, CellError.of(line));
    }

    @Test
    void theSampleReplacesOnlyAnEarlierSample(@TempDir Path dir) throws IOException {
        Files.writeString(dir.resolve("notes.txt"), "mine");
        IllegalArgumentException refused = assertThrows(IllegalArgumentException.class,
                () -> io.csattention.jobs.Notebooks.writeSample(null, dir.toString()));
        assertEquals("sample directory must be empty or an earlier notebook sample (no .csattention-notebook-sample "
                + "in it); dir=" + dir.toAbsolutePath(), refused.getMessage());
        assertTrue(Files.exists(dir.resolve("notes.txt")), "nothing deleted");
    }
}
