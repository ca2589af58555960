package io.csattention.notebook;

import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.jfree.chart.ChartFactory;
import org.jfree.chart.ChartUtils;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.axis.LogAxis;
import org.jfree.chart.axis.NumberAxis;
import org.jfree.chart.plot.PlotOrientation;
import org.jfree.chart.plot.XYPlot;
import org.jfree.chart.renderer.xy.XYLineAndShapeRenderer;
import org.jfree.data.xy.XYSeries;
import org.jfree.data.xy.XYSeriesCollection;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * What the notebooks' Scala cells call (imported into every Scala cell): jobs of the jar run as a user runs them,
 * charts drawn from a table, and display of tables and images.
 */
public final class Walkthrough {

    private static final int WIDTH = 720;
    private static final int HEIGHT = 420;

    /** Where {@link #display} sends rich output: the Jupyter kernel's display; printed text elsewhere. */
    static volatile Consumer<Object> displaySink = value -> System.out.println(text(value));

    private Walkthrough() {
    }

    /**
     * Runs {@code java io.csattention.jobs.Main args...} in a new JVM on this JVM's class path and flags (as
     * {@code java -jar csattention-jobs.jar args...} does), printing its stdout. Exit code 0 returns; otherwise the
     * job's one-line error is the cell's error.
     */
    public static void job(String... args) throws CellError {
        Finished finished = start(args);
        if (finished.exitCode != 0) {
            throw new CellError(finished.errorLine(), null);
        }
    }

    /** {@link #job} that prints the job's one-line error and returns its exit code instead of failing the cell. */
    public static int jobExitCode(String... args) throws CellError {
        Finished finished = start(args);
        if (finished.exitCode != 0) {
            System.out.println(finished.errorLine());
        }
        return finished.exitCode;
    }

    /**
     * Runs {@code body}; a user's error (a missing path, a wrong head) is printed as its one line, the way the command
     * line prints it, instead of failing the cell: for notes whose runner (Zeppelin) shows a failed paragraph's stack
     * trace. Any other error fails the cell.
     */
    public static void oneLine(scala.Function0<?> body) throws CellError {
        try {
            body.apply();
        } catch (Exception e) { // Scala code throws checked exceptions undeclared
            CellError error = CellError.of(e);
            if (io.csattention.jobs.Notebooks.errorLine(e) == null) {
                throw error;
            }
            System.out.println(error.getMessage());
        }
    }

    /**
     * A line chart of {@code table}: one series per distinct value of {@code seriesColumn}, points
     * ({@code xColumn}, {@code yColumn}) in ascending x, as a PNG. {@code logX} draws x on a log2 axis.
     */
    public static byte[] lineChart(String title, Dataset<Row> table, String xColumn, String yColumn,
                                   String seriesColumn, boolean logX) {
        System.setProperty("java.awt.headless", "true");
        Map<String, XYSeries> series = new LinkedHashMap<>();
        for (Row row : table.select(seriesColumn, xColumn, yColumn).orderBy(seriesColumn, xColumn).collectAsList()) {
            String name = String.valueOf(row.get(0));
            series.computeIfAbsent(name, XYSeries::new).add(((Number) row.get(1)).doubleValue(),
                    ((Number) row.get(2)).doubleValue());
        }
        XYSeriesCollection data = new XYSeriesCollection();
        series.values().forEach(data::addSeries);
        JFreeChart chart = ChartFactory.createXYLineChart(title, xColumn, yColumn, data, PlotOrientation.VERTICAL,
                true, false, false);
        XYPlot plot = chart.getXYPlot();
        if (logX) {
            LogAxis x = new LogAxis(xColumn + " (log2)");
            x.setBase(2);
            x.setStandardTickUnits(NumberAxis.createIntegerTickUnits());
            plot.setDomainAxis(x);
        } else {
            ((NumberAxis) plot.getDomainAxis()).setAutoRangeIncludesZero(false);
        }
        ((NumberAxis) plot.getRangeAxis()).setAutoRangeIncludesZero(false);
        XYLineAndShapeRenderer renderer = new XYLineAndShapeRenderer(true, true);
        plot.setRenderer(renderer);
        ByteArrayOutputStream png = new ByteArrayOutputStream();
        try {
            ChartUtils.writeChartAsPNG(png, chart, WIDTH, HEIGHT);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return png.toByteArray();
    }

    /** Zeppelin's display of a PNG: a paragraph's output that starts with {@code %html}. */
    public static String html(byte[] png) {
        return "%html <img src=\"data:image/png;base64," + Base64.getEncoder().encodeToString(png) + "\"/>";
    }

    /** Shows a table (its first 50 rows), a PNG ({@code byte[]}) or any value's text in the cell's output. */
    public static void display(Object value) {
        displaySink.accept(value);
    }

    /** A table's first rows, collected once: as a text grid (what Spark's {@code show} prints) and as HTML. */
    public record Shown(List<String[]> cells, int rowCount) {

        public String text() {
            int[] width = new int[cells.get(0).length];
            for (String[] row : cells) {
                for (int c = 0; c < row.length; c++) {
                    width[c] = Math.max(width[c], row[c].length());
                }
            }
            StringBuilder rule = new StringBuilder("+");
            for (int w : width) {
                rule.append("-".repeat(w)).append('+');
            }
            StringBuilder out = new StringBuilder(rule).append('\n');
            for (int r = 0; r < cells.size(); r++) {
                out.append('|');
                for (int c = 0; c < width.length; c++) {
                    out.append(" ".repeat(width[c] - cells.get(r)[c].length())).append(cells.get(r)[c]).append('|');
                }
                out.append('\n');
                if (r == 0) {
                    out.append(rule).append('\n');
                }
            }
            return out.append(rule).toString();
        }

        public String html() {
            StringBuilder out = new StringBuilder("<table>");
            for (int r = 0; r < cells.size(); r++) {
                out.append("<tr>");
                for (String cell : cells.get(r)) {
                    String tag = r == 0 ? "th" : "td";
                    out.append('<').append(tag).append('>').append(escape(cell)).append("</").append(tag).append('>');
                }
                out.append("</tr>");
            }
            return out.append("</table>").toString();
        }
    }

    /** Collects the first {@code rows} rows of {@code table}. */
    public static Shown show(Dataset<?> table, int rows) {
        List<String[]> cells = cells(table, rows);
        return new Shown(cells, cells.size() - 1);
    }

    /** Header, then up to {@code rows} rows; arrays longer than 8 values show their first 8 and the count. */
    private static List<String[]> cells(Dataset<?> table, int rows) {
        String[] columns = table.columns();
        List<String[]> out = new ArrayList<>();
        out.add(columns);
        for (Row row : table.toDF().limit(rows).collectAsList()) {
            String[] line = new String[columns.length];
            for (int c = 0; c < columns.length; c++) {
                line[c] = cell(row.get(c));
            }
            out.add(line);
        }
        return out;
    }

    private static String cell(Object value) {
        if (value instanceof scala.collection.Seq<?> seq) {
            List<String> shown = new ArrayList<>();
            scala.collection.Iterator<?> it = seq.iterator();
            while (it.hasNext() && shown.size() < 8) {
                shown.add(cell(it.next()));
            }
            return "[" + String.join(", ", shown) + (seq.size() > 8 ? ", ... (" + seq.size() + " values)" : "") + "]";
        }
        if (value instanceof Row row) {
            List<String> fields = new ArrayList<>();
            for (int i = 0; i < row.size(); i++) {
                fields.add(cell(row.get(i)));
            }
            return "{" + String.join(", ", fields) + "}";
        }
        if (value instanceof Float f) {
            return String.format(java.util.Locale.ROOT, "%.5g", f);
        }
        if (value instanceof Double d) {
            return String.format(java.util.Locale.ROOT, "%.5g", d);
        }
        return String.valueOf(value);
    }

    private static String escape(String text) {
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;");
    }

    static String text(Object value) {
        if (value instanceof Dataset<?> table) {
            return show(table, 50).text();
        }
        if (value instanceof byte[] png) {
            return "<image/png, " + png.length + " bytes>";
        }
        return String.valueOf(value);
    }

    private record Finished(int exitCode, List<String> stderr) {
        String errorLine() {
            for (int i = stderr.size() - 1; i >= 0; i--) {
                if (stderr.get(i).startsWith("error: ")) {
                    return stderr.get(i);
                }
            }
            return "error: the job exited with code " + exitCode + (stderr.isEmpty() ? ""
                    : "; last line=" + stderr.get(stderr.size() - 1));
        }
    }

    private static Finished start(String... args) throws CellError {
        List<String> command = new ArrayList<>();
        command.add(new File(System.getProperty("java.home"), "bin/java").getPath());
        for (String flag : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            if (flag.startsWith("--add-") || flag.startsWith("-Djdk.") || flag.startsWith("-Dio.netty.")) {
                command.add(flag);
            }
        }
        // an executable jar's Add-Opens do not reach a plain -cp launch; the parent POM's list, as the jobs jar has it
        String opens = manifestOpens();
        if (opens != null) {
            for (String pkg : opens.trim().split("\\s+")) {
                command.add("--add-opens=" + pkg + "=ALL-UNNAMED");
            }
        }
        List<String> classPath = new ArrayList<>(ScalaCells.classPath());
        // the jobs jar itself, where a notebook server loads it through a class loader of its own
        java.security.CodeSource jobs = io.csattention.jobs.Main.class.getProtectionDomain().getCodeSource();
        if (jobs != null && "file".equals(jobs.getLocation().getProtocol())) {
            String location = new File(java.net.URI.create(jobs.getLocation().toString())).getPath();
            if (!classPath.contains(location)) {
                classPath.add(0, location);
            }
        }
        command.add("-cp");
        command.add(String.join(File.pathSeparator, classPath));
        command.add("io.csattention.jobs.Main");
        command.addAll(List.of(args));
        try {
            Process process = new ProcessBuilder(command).start();
            List<String> stderr = new ArrayList<>();
            Thread errors = new Thread(() -> stderr.addAll(lines(process.getErrorStream())));
            errors.start();
            try (InputStream out = process.getInputStream()) {
                byte[] buffer = new byte[8192];
                int n;
                while ((n = out.read(buffer)) > 0) {
                    System.out.print(new String(buffer, 0, n, StandardCharsets.UTF_8));
                }
            }
            int code = process.waitFor();
            errors.join();
            System.out.flush();
            return new Finished(code, stderr);
        } catch (IOException e) {
            throw new CellError("error: the job could not start: " + e.getMessage() + "; command=" + command.get(0), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CellError("error: interrupted while the job ran; args=" + String.join(" ", args), e);
        }
    }

    private static String manifestOpens() {
        for (String entry : ScalaCells.classPath()) {
            if (!entry.endsWith(".jar")) {
                continue;
            }
            try (java.util.jar.JarFile jar = new java.util.jar.JarFile(entry)) {
                java.util.jar.Manifest manifest = jar.getManifest();
                String opens = manifest == null ? null : manifest.getMainAttributes().getValue("Add-Opens");
                if (opens != null) {
                    return opens;
                }
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return null;
    }

    private static List<String> lines(InputStream in) {
        try (in) {
            return List.of(new String(in.readAllBytes(), StandardCharsets.UTF_8).split("\\R"));
        } catch (IOException e) {
            return List.of("error: reading the job's stderr failed: " + e.getMessage());
        }
    }
}
