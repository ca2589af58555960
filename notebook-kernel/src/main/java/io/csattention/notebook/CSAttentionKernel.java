package io.csattention.notebook;

import io.github.spencerpark.jupyter.channels.JupyterConnection;
import io.github.spencerpark.jupyter.kernel.BaseKernel;
import io.github.spencerpark.jupyter.kernel.KernelConnectionProperties;
import io.github.spencerpark.jupyter.kernel.LanguageInfo;
import io.github.spencerpark.jupyter.kernel.display.DisplayData;
import org.apache.spark.sql.Dataset;

import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;

/**
 * The Jupyter kernel of the walkthroughs: Scala cells (Scala 2.13, the session bound as {@code spark}) and
 * {@code %sql} cells against a local Spark session with the CSAttention extension, the project's jar on the class
 * path. Built on the Jupyter protocol library {@code io.github.spencerpark:jupyter-jvm-basekernel}. A cell's user
 * error (a missing index path, a wrong head) is shown as the command line's one line, not a stack trace. What a cell
 * prints on stdout is its output; stderr (Spark's log) is the kernel's log.
 *
 * <p>Install: {@code jupyter kernelspec install --user --name csattention notebook-kernel/target/kernelspec}.
 */
public final class CSAttentionKernel extends BaseKernel {

    private static final int SHOWN_ROWS = 50;

    private final CompletableFuture<NotebookSession> session;

    CSAttentionKernel() {
        // stdout goes to the cell (in eval); stderr stays the kernel's, so Spark's log lines (an executor's logged
        // stack trace included) go to the kernel's log, not into the notebook
        setShouldReplaceStdStreams(false);
        // started while the kernel already answers (the session and the Scala compiler take a while to start)
        session = CompletableFuture.supplyAsync(NotebookSession::start);
        Walkthrough.displaySink = value -> display(displayData(value));
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("error: the kernel takes one argument, the connection file; arguments="
                    + args.length);
            System.exit(2);
        }
        // the protocol library logs every message at INFO; its sockets' loggers have this one as their parent
        io.github.spencerpark.jupyter.channels.JupyterSocket.JUPYTER_LOGGER.setLevel(java.util.logging.Level.WARNING);
        Path connectionFile = Path.of(args[0]);
        if (!Files.isReadable(connectionFile)) {
            System.err.println("error: connection file must be readable; path=" + connectionFile);
            System.exit(2);
        }
        JupyterConnection connection = new JupyterConnection(
                KernelConnectionProperties.parse(Files.readString(connectionFile)));
        CSAttentionKernel kernel = new CSAttentionKernel();
        kernel.becomeHandlerForConnection(connection);
        connection.connect();
        connection.waitUntilClose();
        kernel.session.thenAccept(NotebookSession::close);
        System.exit(0);
    }

    @Override
    public LanguageInfo getLanguageInfo() {
        return new LanguageInfo.Builder("scala").version(scala.util.Properties.versionNumberString())
                .mimetype("text/x-scala").fileExtension(".scala").pygments("scala").codemirror("text/x-scala")
                .build();
    }

    @Override
    public String getBanner() {
        return "CSAttention notebook kernel: Scala and %sql cells on a local Spark session with the extension";
    }

    @Override
    public DisplayData eval(String code) throws Exception {
        PrintStream processOut = System.out;
        System.setOut(getIO().out);
        try {
            return evalCell(code);
        } finally {
            System.out.flush();
            System.setOut(processOut);
        }
    }

    private DisplayData evalCell(String code) throws Exception {
        NotebookSession notebook;
        try {
            notebook = session.join();
        } catch (CompletionException e) {
            throw CellError.of(e.getCause());
        }
        NotebookSession.Cell cell = NotebookSession.parse(code);
        if (cell.language() == NotebookSession.Language.SQL) {
            Walkthrough.Shown shown = notebook.sql(cell.code(), SHOWN_ROWS);
            return shown.cells().get(0).length == 0 ? null : tableData(shown);
        }
        String echo = notebook.scala(cell.code()).strip();
        return echo.isEmpty() ? null : new DisplayData(echo);
    }

    @Override
    public List<String> formatError(Exception e) {
        if (e instanceof CellError) {
            return List.of(e.getMessage().split("\\R"));
        }
        return super.formatError(e);
    }

    @Override
    public void onShutdown(boolean isRestarting) {
        session.thenAccept(NotebookSession::close);
    }

    private static DisplayData tableData(Walkthrough.Shown shown) {
        DisplayData data = new DisplayData(shown.text());
        data.putHTML(shown.html());
        return data;
    }

    private static DisplayData displayData(Object value) {
        if (value instanceof byte[] png) {
            DisplayData data = new DisplayData("<chart: image/png, " + png.length + " bytes>");
            data.putData("image/png", Base64.getEncoder().encodeToString(png));
            return data;
        }
        if (value instanceof Dataset<?> table) {
            return tableData(Walkthrough.show(table, SHOWN_ROWS));
        }
        return new DisplayData(String.valueOf(value));
    }
}
