package io.csattention.jobs;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.csattention.core.FloatMatrix;
import io.csattention.eval.MethodResult;
import io.csattention.format.Npy;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

/**
 * The report of an evaluation: a table on stdout, and under an output directory {@code <method>/selected.npy},
 * {@code <method>/output.npy} and {@code summary.json}. The directory is written beside its final place and moved
 * there only when complete, so a failed run leaves no partial results.
 */
final class EvalReport {

    private static final ObjectMapper JSON = new ObjectMapper();

    private EvalReport() {
    }

    static ObjectNode summary(List<MethodResult> results, ObjectNode context) {
        ObjectNode root = JSON.createObjectNode();
        root.set("context", context);
        ObjectNode methods = root.putObject("methods");
        for (MethodResult r : results) {
            ObjectNode m = methods.putObject(r.method().id());
            m.put("budget", r.budget());
            m.put("recall_mean", r.meanRecall());
            m.put("recall_p10", r.p10Recall());
            m.put("attention_mass_recall", r.meanMassRecall());
            m.put("relative_error_mean", r.meanRelativeError());
            m.put("relative_error_p90", r.p90RelativeError());
            m.put("index_build_ms", r.buildMillis());
            m.put("decode_us_per_query", r.decodeMicrosPerQuery());
            m.put("index_bytes", r.indexBytes());
        }
        return root;
    }

    static void printTable(PrintWriter out, List<MethodResult> results) {
        out.printf(Locale.ROOT, "%-12s %7s %8s %8s %8s %9s %9s %11s %12s %12s%n", "method", "budget", "recall",
                "rec.p10", "mass", "err.mean", "err.p90", "build ms", "decode us/q", "index bytes");
        for (MethodResult r : results) {
            out.printf(Locale.ROOT, "%-12s %7d %8.4f %8.4f %8.4f %9.5f %9.5f %11.1f %12.1f %12d%n", r.method().id(),
                    r.budget(), r.meanRecall(), r.p10Recall(), r.meanMassRecall(), r.meanRelativeError(),
                    r.p90RelativeError(), r.buildMillis(), r.decodeMicrosPerQuery(), r.indexBytes());
        }
        out.flush();
    }

    /** Writes every method's arrays and the summary, atomically replacing an empty or missing {@code out}. */
    static void write(Path out, List<MethodResult> results, ObjectNode summary, int queries, int dim)
            throws IOException {
        OutputDir.write(out, staging -> {
            for (MethodResult r : results) {
                Path dir = Files.createDirectories(staging.resolve(r.method().id()));
                Npy.writeInts(dir.resolve("selected.npy"), queries, r.selectionWidth(), r.selected());
                Npy.write(dir.resolve("output.npy"), new FloatMatrix(queries, dim, r.outputs()));
            }
            JSON.writerWithDefaultPrettyPrinter().writeValue(staging.resolve("summary.json").toFile(), summary);
        });
    }

    /**
     * Prints {@code header} and the table, writes the arrays and summary under {@code out} when given, and prints
     * the summary as the last stdout line when {@code json}.
     */
    static void finish(PrintWriter writer, String header, List<MethodResult> results, ObjectNode context, Path out,
                       int queries, int dim, boolean json) throws IOException {
        writer.println(header);
        printTable(writer, results);
        writer.printf(Locale.ROOT, "KV bytes of the head (float32 K and V): %d; index bytes are the method's own "
                + "tables%n", context.get("kv_bytes").asLong());
        ObjectNode summary = summary(results, context);
        if (out != null) {
            write(out, results, summary, queries, dim);
        }
        if (json) {
            writer.println(json(summary));
        }
    }

    static String json(Object node) throws IOException {
        return JSON.writeValueAsString(node);
    }

    static ObjectNode object() {
        return JSON.createObjectNode();
    }
}
