package io.csattention.jobs;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Optional;

/** Ratios, the CSV, the stdout table and the JSON summary of one benchmark run. */
final class BenchReport {

    private static final ObjectMapper JSON = new ObjectMapper();

    private final List<BenchRow> rows;
    private final String kernels;
    private final List<String> sources;

    BenchReport(List<BenchRow> rows, String kernels, List<String> sources) {
        this.rows = rows;
        this.kernels = kernels;
        this.sources = sources;
    }

    /** The row of {@code method} at the same context, sparsity and threads as {@code row}. */
    Optional<BenchRow> peer(BenchRow row, String method) {
        return find(rows, row.tokens(), row.sparsity(), method, row.threads());
    }

    static Optional<BenchRow> find(List<BenchRow> rows, int tokens, double sparsity, String method, int threads) {
        return rows.stream().filter(r -> r.tokens() == tokens && r.sparsity() == sparsity
                && r.method().equals(method) && r.threads() == threads).findFirst();
    }

    /** How many times faster {@code row} decodes than {@code method} in the same setting; NaN when not measured. */
    double speedup(BenchRow row, String method) {
        return peer(row, method).map(p -> p.decodeMicros() / row.decodeMicros()).orElse(Double.NaN);
    }

    void writeCsv(Path file) throws IOException {
        StringBuilder csv = new StringBuilder(BenchRow.CSV_HEADER).append('\n');
        for (BenchRow r : rows) {
            csv.append(String.format(Locale.ROOT, "%d,%d,%d,%.4f,%s,%d,%d,%.3f,%.4f,%.4f,%.5f,%.5f,%.6f,%.1f,%.2f,"
                            + "%.1f,%.5f%n", r.tokens(), r.dim(), r.queries(), r.sparsity(), r.method(), r.threads(),
                    r.budget(), r.decodeMicros(), speedup(r, "full"), speedup(r, "quest"), r.recall(),
                    r.recallP10(), r.error(), r.buildMillis(), r.indexBytesPerToken(), r.kvBytesPerToken(),
                    r.indexToKv()));
        }
        Files.writeString(file, csv.toString().replace("NaN", ""));
    }

    String table() {
        StringBuilder out = new StringBuilder();
        out.append(String.format(Locale.ROOT, "%8s %8s %-11s %3s %11s %8s %8s %7s %7s %9s %10s %7s%n", "tokens",
                "sparsity", "method", "thr", "us/query", "x full", "x quest", "recall", "error", "build ms",
                "idx B/tok", "idx/KV"));
        for (BenchRow r : rows) {
            out.append(String.format(Locale.ROOT, "%8d %8.2f %-11s %3d %11.1f %8.2f %8.2f %7.3f %7.4f %9.0f %10.1f "
                            + "%7.3f%n", r.tokens(), r.sparsity(), r.method(), r.threads(), r.decodeMicros(),
                    speedup(r, "full"), speedup(r, "quest"), r.recall(), r.error(), r.buildMillis(),
                    r.indexBytesPerToken(), r.indexToKv()));
        }
        out.append("x full, x quest: decode speed ratios measured in this run (higher is faster); KV = float32 K+V "
                + "of one head (8d bytes per token)\n");
        return out.toString();
    }

    /**
     * csattention at {@code preferredSparsity} (or the first sparsity measured), single-threaded (or the fewest
     * threads measured), per context length: its speedups over full and quest, recall, error and index size; plus
     * the growth of its decode time from 32K to 128K tokens when both were measured.
     */
    ObjectNode summary(double preferredSparsity) {
        ObjectNode node = JSON.createObjectNode();
        node.put("method", "csattention");
        node.put("kernels", kernels);
        node.put("data", String.join(";", sources.stream().distinct().toList()));
        List<BenchRow> cs = rows.stream().filter(r -> r.method().equals("csattention")).toList();
        if (cs.isEmpty()) {
            return node;
        }
        double sparsity = cs.stream().anyMatch(r -> r.sparsity() == preferredSparsity) ? preferredSparsity
                : cs.get(0).sparsity();
        int threads = cs.stream().mapToInt(BenchRow::threads).min().orElse(1);
        node.put("sparsity", sparsity);
        node.put("threads", threads);
        ObjectNode contexts = node.putObject("contexts");
        for (BenchRow r : cs) {
            if (r.sparsity() != sparsity || r.threads() != threads) {
                continue;
            }
            ObjectNode c = contexts.putObject(Integer.toString(r.tokens()));
            putRatio(c, "speedup_vs_full", speedup(r, "full"));
            putRatio(c, "speedup_vs_quest", speedup(r, "quest"));
            c.put("recall", BenchRow.round(r.recall(), 4));
            c.put("error", BenchRow.round(r.error(), 5));
            c.put("decode_us_per_query", BenchRow.round(r.decodeMicros(), 1));
            c.put("index_bytes_per_token", BenchRow.round(r.indexBytesPerToken(), 1));
            c.put("kv_bytes_per_token", r.kvBytesPerToken());
            c.put("index_to_kv_bytes", BenchRow.round(r.indexToKv(), 4));
            rows.stream().filter(o -> o.method().equals("csattention") && o.tokens() == r.tokens()
                            && o.sparsity() == sparsity && o.threads() > threads)
                    .max(java.util.Comparator.comparingInt(BenchRow::threads))
                    .ifPresent(o -> {
                        c.put("threads_all", o.threads());
                        putRatio(c, "speedup_vs_full_all_threads", speedup(o, "full"));
                        putRatio(c, "speedup_vs_quest_all_threads", speedup(o, "quest"));
                    });
        }
        Optional<BenchRow> at32k = find(rows, 32768, sparsity, "csattention", threads);
        Optional<BenchRow> at128k = find(rows, 131072, sparsity, "csattention", threads);
        if (at32k.isPresent() && at128k.isPresent()) {
            putRatio(node, "decode_growth_32k_to_128k", at128k.get().decodeMicros() / at32k.get().decodeMicros());
        }
        return node;
    }

    private static void putRatio(ObjectNode node, String name, double value) {
        if (Double.isNaN(value)) {
            node.putNull(name);
        } else {
            node.put(name, BenchRow.round(value, 3));
        }
    }
}
