package io.csattention.spark;

import io.csattention.core.Attention;
import io.csattention.core.BudgetPlan;
import io.csattention.format.IndexFileSummary;
import org.apache.spark.api.java.function.MapPartitionsFunction;
import org.apache.spark.broadcast.Broadcast;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;

/**
 * The decode stage on an executor: the partition's query rows are taken in blocks of {@code blockSize}; each row is
 * checked against the broadcast metadata, its head comes from the executor cache (loaded once), and the selector
 * and exact attention give the output. The result depends only on the row and the committed index set, so a
 * retried task writes the same rows.
 */
final class DecodePartition implements MapPartitionsFunction<Row, Row> {

    private final Broadcast<DecodePlan> plan;
    private final QueriesSchema schema;
    private final CSAttentionMetrics metrics;

    DecodePartition(Broadcast<DecodePlan> plan, QueriesSchema schema, CSAttentionMetrics metrics) {
        this.plan = plan;
        this.schema = schema;
        this.metrics = metrics;
    }

    /** A query row that cannot be decoded; the message names the query_id and the problem. */
    static final class BadQueryException extends IllegalArgumentException {
        BadQueryException(String message) {
            super(message);
        }
    }

    @Override
    public Iterator<Row> call(Iterator<Row> input) {
        DecodePlan p = plan.value();
        int blockSize = p.options().blockSize();
        java.util.Map<HeadKey, LoadedHead> taskHeads = new java.util.HashMap<>();
        return new Iterator<>() {
            private final List<Row> block = new ArrayList<>(blockSize);
            private int next;

            @Override
            public boolean hasNext() {
                if (next < block.size()) {
                    return true;
                }
                block.clear();
                next = 0;
                List<Row> in = new ArrayList<>(blockSize);
                while (in.size() < blockSize && input.hasNext()) {
                    in.add(input.next());
                }
                for (Row row : in) {
                    block.add(decode(p, row, taskHeads));
                }
                return !block.isEmpty();
            }

            @Override
            public Row next() {
                if (!hasNext()) {
                    throw new NoSuchElementException();
                }
                return block.get(next++);
            }
        };
    }

    /** Decodes one row; {@code taskHeads} keeps the heads this task has taken from the executor cache. */
    private Row decode(DecodePlan p, Row row, java.util.Map<HeadKey, LoadedHead> taskHeads) {
        QueriesSchema s = schema;
        Object queryId = row.get(s.queryId());
        String contextId = row.isNullAt(s.contextId()) ? null : row.getString(s.contextId());
        Integer layer = row.isNullAt(s.layer()) ? null : row.getInt(s.layer());
        Integer head = row.isNullAt(s.head()) ? null : row.getInt(s.head());
        Integer kvHead = head == null ? null : head / p.options().queryHeadsPerKvHead();
        try {
            HeadKey key = check(p, row, contextId, layer, head);
            float[] query = vector(p, row, key);
            LoadedHead loaded = taskHeads.get(key);
            if (loaded == null) {
                loaded = p.load(key, metrics);
                taskHeads.put(key, loaded);
            }
            long start = System.nanoTime();
            BudgetPlan budget = p.options().settings().plan(loaded.cache.size());
            int[] selected = loaded.selector.select(query, 0, budget);
            float[] out = new float[query.length];
            Attention.attend(p.options().kernels(), query, 0, loaded.cache, selected, out, 0);
            long nanos = System.nanoTime() - start;
            metrics.queriesDecoded.add(1);
            return row(queryId, contextId, layer, head, kvHead, out, selected, nanos, null);
        } catch (BadQueryException e) {
            if (!p.options().routeErrors()) {
                throw e;
            }
            metrics.queryErrors.add(1);
            return row(queryId, contextId, layer, head, kvHead, null, null, 0L, e.getMessage());
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    private Row row(Object queryId, String contextId, Integer layer, Integer head, Integer kvHead, float[] out,
                    int[] selected, long nanos, String error) {
        List<Object> values = new ArrayList<>(9);
        values.add(queryId);
        values.add(contextId);
        values.add(layer);
        values.add(head);
        values.add(kvHead);
        values.add(out);
        if (plan.value().options().withSelected()) {
            values.add(selected == null ? null : trimmed(selected));
        }
        values.add(nanos);
        if (plan.value().options().routeErrors()) {
            values.add(error);
        }
        return RowFactory.create(values.toArray());
    }

    private static int[] trimmed(int[] selected) {
        int n = 0;
        while (n < selected.length && selected[n] >= 0) {
            n++;
        }
        return n == selected.length ? selected : java.util.Arrays.copyOf(selected, n);
    }

    private HeadKey check(DecodePlan p, Row row, String contextId, Integer layer, Integer head) {
        String id = schema.queryIdText(row);
        if (contextId == null || layer == null || head == null) {
            throw new BadQueryException("context_id, layer and head must not be null (query_id=" + id + "); "
                    + "context_id=" + contextId + ", layer=" + layer + ", head=" + head);
        }
        HeadKey key = new HeadKey(contextId, layer, head / p.options().queryHeadsPerKvHead());
        if (head < 0 || !p.entries().containsKey(key)) {
            boolean knownContext = p.entries().keySet().stream().anyMatch(k -> k.contextId().equals(contextId));
            if (!knownContext) {
                throw new BadQueryException("context_id must name a context of the index set " + p.root()
                        + " (query_id=" + id + "); context_id=" + contextId);
            }
            String heads = p.entries().keySet().stream().filter(k -> k.contextId().equals(contextId))
                    .map(k -> k.layer() + "/" + k.kvHead()).sorted().toList().toString();
            throw new BadQueryException("layer and head must name a head of context_id=" + contextId
                    + " (query_id=" + id + "; layer/kv_head there: " + heads + "); layer=" + layer + ", head=" + head);
        }
        return key;
    }

    private float[] vector(DecodePlan p, Row row, HeadKey key) {
        String id = schema.queryIdText(row);
        if (row.isNullAt(schema.query())) {
            throw new BadQueryException("query must not be null (query_id=" + id + "); query=null");
        }
        float[] query;
        try {
            query = schema.queryType().floats(row, schema.query());
        } catch (IllegalArgumentException e) {
            throw new BadQueryException(e.getMessage() + " (query_id=" + id + ")");
        }
        IndexFileSummary summary = p.summaries().get(key);
        if (query.length != summary.dim()) {
            throw new BadQueryException("query must have head_dim=" + summary.dim() + " values (query_id=" + id
                    + "); query.length=" + query.length);
        }
        for (int i = 0; i < query.length; i++) {
            if (!Float.isFinite(query[i])) {
                throw new BadQueryException("query must hold finite values (query_id=" + id + "); query[" + i + "]="
                        + query[i]);
            }
        }
        return query;
    }
}
