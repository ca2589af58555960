package io.csattention.notebook;

import org.apache.spark.sql.SparkSession;
import scala.Option;
import scala.tools.nsc.Settings;
import scala.tools.nsc.interpreter.IMain;
import scala.tools.nsc.interpreter.Results;
import scala.tools.nsc.interpreter.shell.ReplReporterImpl;

import java.io.File;
import java.io.IOException;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.jar.JarFile;
import java.util.jar.Manifest;

/**
 * Scala cells: one Scala 2.13 REPL (the compiler's {@link IMain}, what spark-shell's REPL is built on) with the
 * session bound as {@code spark}, {@code spark.implicits._} and {@link Walkthrough}'s helpers imported. Definitions
 * of one cell are seen by the next. Code runs on the calling thread; what it prints goes to {@code System.out} as it
 * is at that moment (the kernel points it at the cell's output).
 */
public final class ScalaCells implements AutoCloseable {

    private final IMain repl;
    private final StringWriter echo = new StringWriter();

    /** Starts the compiler (seconds; nothing of Spark is needed, so it may run while the session starts). */
    public ScalaCells() {
        Settings settings = new Settings();
        settings.processArgumentString("-classpath " + String.join(File.pathSeparator, classPath())
                + " -Yrepl-class-based -deprecation:false");
        repl = new IMain(settings, new ReplReporterImpl(settings, new PrintWriter(echo, true)));
        if (!repl.initializeCompiler()) {
            throw new IllegalStateException("the Scala compiler did not start: " + echo);
        }
    }

    /** Binds {@code spark} and imports {@code spark.implicits._} and {@link Walkthrough}'s helpers. */
    void bind(SparkSession spark) {
        repl.bind("spark", SparkSession.class.getName(), spark,
                scala.collection.immutable.List$.MODULE$.<String>empty());
        try {
            run("import spark.implicits._\nimport io.csattention.notebook.Walkthrough._");
        } catch (CellError e) {
            throw new IllegalStateException("the Scala cells' preamble failed: " + e.getMessage(), e);
        }
    }

    /**
     * Compiles and runs {@code code}; returns the REPL's echo of what it defined ({@code val x: Int = 3}). A cell
     * that does not compile or throws is a {@link CellError} (one line when the error is the user's).
     */
    public String run(String code) throws CellError {
        echo.getBuffer().setLength(0);
        Object before = lastException();
        PrintStream out = System.out;
        Results.Result result = (Results.Result) scala.Console$.MODULE$.withOut(out,
                () -> scala.Console$.MODULE$.withErr(System.err, () -> repl.interpret(code)));
        String echoed = echo.toString();
        String kind = result.getClass().getSimpleName();
        if (kind.startsWith("Success")) {
            return echoed;
        }
        Object after = lastException();
        if (after instanceof Throwable thrown && after != before) {
            throw CellError.of(thrown);
        }
        if (kind.startsWith("Incomplete")) {
            throw new CellError("error: the cell ends inside a Scala statement", null);
        }
        throw new CellError(echoed.strip(), null);
    }

    private Object lastException() {
        Option<Object> value = repl.valueOfTerm("lastException");
        return value.isDefined() ? value.get() : null;
    }

    /** The JVM's class path with the Class-Path of its jars' manifests (the kernel jar names the jobs jar so). */
    static List<String> classPath() {
        Set<String> out = new LinkedHashSet<>();
        for (String entry : System.getProperty("java.class.path").split(File.pathSeparator)) {
            add(new File(entry).getAbsoluteFile(), out);
        }
        return new ArrayList<>(out);
    }

    private static void add(File entry, Set<String> out) {
        if (!entry.exists() || !out.add(entry.getPath()) || !entry.getName().endsWith(".jar")) {
            return;
        }
        try (JarFile jar = new JarFile(entry)) {
            Manifest manifest = jar.getManifest();
            String named = manifest == null ? null : manifest.getMainAttributes().getValue("Class-Path");
            if (named != null) {
                for (String relative : named.trim().split("\\s+")) {
                    add(new File(entry.getParentFile(), relative).toPath().normalize().toFile(), out);
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("class path entry must be a readable jar; entry=" + entry, e);
        }
    }

    @Override
    public void close() {
        repl.close();
    }
}
