package io.csattention.jobs;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

/**
 * One measurement of the benchmark: a method at a context length, sparsity and thread count.
 *
 * @param decodeMicros       median decode time per query (selection + exact attention over the selected keys)
 * @param recall             mean share of the oracle's top-budget set (sink and window included) selected
 * @param recallP10          10th percentile of that share over the queries
 * @param error              mean relative L2 error of the output against full attention
 * @param buildMillis        time to build the method's index over the context (0 for full and none)
 * @param indexBytesPerToken the method's index bytes divided by the context length
 * @param kvBytesPerToken    float32 K and V bytes per token of one head, {@code 8 d}
 */
record BenchRow(int tokens, int dim, int queries, double sparsity, String method, int threads, int budget,
                double decodeMicros, double recall, double recallP10, double error, double buildMillis,
                double indexBytesPerToken, double kvBytesPerToken) {

    static final String CSV_HEADER = "tokens,head_dim,queries,sparsity,method,threads,budget,decode_us_per_query,"
            + "speedup_vs_full,speedup_vs_quest,recall,recall_p10,error,index_build_ms,index_bytes_per_token,"
            + "kv_bytes_per_token,index_to_kv_bytes";

    double indexToKv() {
        return indexBytesPerToken / kvBytesPerToken;
    }

    ObjectNode toJson(ObjectMapper json) {
        ObjectNode node = json.createObjectNode();
        node.put("tokens", tokens);
        node.put("head_dim", dim);
        node.put("queries", queries);
        node.put("sparsity", sparsity);
        node.put("method", method);
        node.put("threads", threads);
        node.put("budget", budget);
        node.put("decode_us_per_query", round(decodeMicros, 2));
        node.put("recall", round(recall, 4));
        node.put("recall_p10", round(recallP10, 4));
        node.put("error", round(error, 5));
        node.put("index_build_ms", round(buildMillis, 1));
        node.put("index_bytes_per_token", round(indexBytesPerToken, 1));
        node.put("kv_bytes_per_token", kvBytesPerToken);
        node.put("index_to_kv_bytes", round(indexToKv(), 4));
        return node;
    }

    static double round(double value, int digits) {
        double scale = Math.pow(10, digits);
        return Math.round(value * scale) / scale;
    }
}
