package io.csattention.jobs;

import org.jfree.chart.ChartFactory;
import org.jfree.chart.ChartUtils;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.axis.LogAxis;
import org.jfree.chart.axis.NumberAxis;
import org.jfree.chart.plot.PlotOrientation;
import org.jfree.chart.plot.XYPlot;
import org.jfree.data.category.DefaultCategoryDataset;
import org.jfree.data.xy.XYSeries;
import org.jfree.data.xy.XYSeriesCollection;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

/** The three PNG charts of a benchmark run, drawn with JFreeChart without a display. */
final class BenchCharts {

    private static final int WIDTH = 900;
    private static final int HEIGHT = 560;

    private BenchCharts() {
    }

    static void write(Path dir, List<BenchRow> rows, double preferredSparsity) throws IOException {
        System.setProperty("java.awt.headless", "true");
        if (rows.isEmpty()) {
            return;
        }
        double sparsity = rows.stream().anyMatch(r -> r.sparsity() == preferredSparsity) ? preferredSparsity
                : rows.get(0).sparsity();
        int threads = rows.stream().mapToInt(BenchRow::threads).min().orElse(1);
        List<String> methods = rows.stream().map(BenchRow::method).distinct().toList();
        BenchReport report = new BenchReport(rows, "", List.of());

        XYSeriesCollection latency = new XYSeriesCollection();
        for (String method : methods) {
            XYSeries series = new XYSeries(method);
            rows.stream().filter(r -> r.method().equals(method) && r.sparsity() == sparsity && r.threads() == threads)
                    .forEach(r -> series.add(r.tokens(), r.decodeMicros()));
            latency.addSeries(series);
        }
        JFreeChart latencyChart = ChartFactory.createXYLineChart(String.format(java.util.Locale.ROOT,
                        "Decode latency vs context length (sparsity %.2f, %d thread%s)", sparsity, threads,
                        threads == 1 ? "" : "s"), "context length (tokens)", "decode us per query (log)", latency,
                PlotOrientation.VERTICAL, true, false, false);
        XYPlot plot = latencyChart.getXYPlot();
        LogAxis x = new LogAxis("context length (tokens, log2)");
        x.setBase(2);
        x.setStandardTickUnits(NumberAxis.createIntegerTickUnits());
        plot.setDomainAxis(x);
        plot.setRangeAxis(new LogAxis("decode us per query (log)"));
        markPoints(plot);
        ChartUtils.saveChartAsPNG(dir.resolve("latency_vs_context.png").toFile(), latencyChart, WIDTH, HEIGHT);

        int largest = rows.stream().mapToInt(BenchRow::tokens).max().orElse(0);
        XYSeriesCollection recall = new XYSeriesCollection();
        for (String method : methods) {
            if (method.equals("full")) {
                continue;
            }
            XYSeries series = new XYSeries(method);
            rows.stream().filter(r -> r.method().equals(method) && r.tokens() == largest && r.threads() == threads)
                    .forEach(r -> series.add(r.sparsity(), r.recall()));
            recall.addSeries(series);
        }
        JFreeChart recallChart = ChartFactory.createXYLineChart("Recall of the oracle top-budget set vs sparsity ("
                        + largest + " tokens)", "sparsity", "mean recall", recall, PlotOrientation.VERTICAL, true,
                false, false);
        NumberAxis recallAxis = (NumberAxis) recallChart.getXYPlot().getRangeAxis();
        recallAxis.setRange(0, 1.02);
        ((NumberAxis) recallChart.getXYPlot().getDomainAxis()).setAutoRangeIncludesZero(false);
        markPoints(recallChart.getXYPlot());
        ChartUtils.saveChartAsPNG(dir.resolve("recall_vs_sparsity.png").toFile(), recallChart, WIDTH, HEIGHT);

        DefaultCategoryDataset speedup = new DefaultCategoryDataset();
        for (BenchRow r : rows) {
            if (r.sparsity() == sparsity && r.threads() == threads && !r.method().equals("full")) {
                double value = report.speedup(r, "full");
                if (!Double.isNaN(value)) {
                    speedup.addValue(value, r.method(), Integer.toString(r.tokens()));
                }
            }
        }
        JFreeChart speedupChart = ChartFactory.createBarChart(String.format(java.util.Locale.ROOT,
                        "Decode speedup over blocked SIMD full attention (sparsity %.2f, %d thread%s)", sparsity,
                        threads, threads == 1 ? "" : "s"), "context length (tokens)", "x faster than full",
                speedup, PlotOrientation.VERTICAL, true, false, false);
        ChartUtils.saveChartAsPNG(dir.resolve("speedup_vs_full.png").toFile(), speedupChart, WIDTH, HEIGHT);
    }

    private static void markPoints(XYPlot plot) {
        org.jfree.chart.renderer.xy.XYLineAndShapeRenderer renderer =
                new org.jfree.chart.renderer.xy.XYLineAndShapeRenderer(true, true);
        plot.setRenderer(renderer);
    }
}
