package io.csattention.spark;

import io.csattention.core.BlockDecoder;
import io.csattention.core.BudgetPlan;
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
 * (the rows of one head together) and exact attention give the output. The result depends only on the row and the committed index set, so a
 * retried task writes the same rows. A bad row ({@link QueryCheck}) is routed, or fails the task once, not retried.
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

    @Override
    public Iterator<Row> call(Iterator<Row> input) {
        DecodePlan p = plan.value();
        int blockSize = p.options().blockSize();
        java.util.Map<HeadKey, LoadedHead> taskHeads = new java.util.HashMap<>();
        return QueryCheck.failOnce(new Iterator<>() {
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
                block.addAll(decode(p, in, taskHeads));
                return !block.isEmpty();
            }

            @Override
            public Row next() {
                if (!hasNext()) {
                    throw new NoSuchElementException();
                }
                return block.get(next++);
            }
        });
    }

    /**
     * Decodes a block of rows, keeping their order; {@code taskHeads} keeps the heads this task has taken from the
     * executor cache. The rows of one head are selected together, {@link BlockDecoder#DEFAULT_QUERY_BLOCK} at a time
     * ({@code KeySelector.selectBlock}: the queries share csattention's re-scoring sweep), which selects what one row
     * at a time would. A row's {@code decode_nanos} is its share of its group's time.
     */
    private List<Row> decode(DecodePlan p, List<Row> in, java.util.Map<HeadKey, LoadedHead> taskHeads) {
        Row[] out = new Row[in.size()];
        float[][] queries = new float[in.size()][];
        long[] positions = new long[in.size()];
        java.util.Map<HeadKey, List<Integer>> byHead = new java.util.LinkedHashMap<>();
        for (int i = 0; i < in.size(); i++) {
            Row row = in.get(i);
            try {
                HeadKey key = check(p, row);
                queries[i] = vector(p, row, key);
                positions[i] = schema.position(row);
                byHead.computeIfAbsent(key, k -> new ArrayList<>()).add(i);
            } catch (BadQueryException e) {
                if (!p.options().routeErrors()) {
                    throw e;
                }
                metrics.queryErrors.add(1);
                out[i] = output(p, row, null, null, 0L, e.getMessage());
            }
        }
        for (java.util.Map.Entry<HeadKey, List<Integer>> group : byHead.entrySet()) {
            LoadedHead loaded = taskHeads.get(group.getKey());
            if (loaded == null) {
                try {
                    loaded = p.load(group.getKey(), metrics);
                } catch (java.io.IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
                taskHeads.put(group.getKey(), loaded);
            }
            List<Integer> rows = group.getValue();
            int d = loaded.cache.dim();
            BudgetPlan budget = p.options().settings().plan(loaded.cache.size());
            for (int first = 0; first < rows.size(); first += BlockDecoder.DEFAULT_QUERY_BLOCK) {
                int count = Math.min(BlockDecoder.DEFAULT_QUERY_BLOCK, rows.size() - first);
                float[] stacked = new float[count * d];
                long[] at = new long[count];
                for (int q = 0; q < count; q++) {
                    int row = rows.get(first + q);
                    System.arraycopy(queries[row], 0, stacked, q * d, d);
                    at[q] = positions[row] >= 0 ? positions[row] : loaded.selector.index().defaultQueryPosition();
                }
                float[] outputs = new float[count * d];
                long start = System.nanoTime();
                int[][] selected = BlockDecoder.decodeBlock(p.options().kernels(), loaded.cache, loaded.selector,
                        budget, stacked, 0, count, at, outputs);
                long nanos = (System.nanoTime() - start) / count;
                for (int q = 0; q < count; q++) {
                    int at0 = rows.get(first + q);
                    out[at0] = output(p, in.get(at0), java.util.Arrays.copyOfRange(outputs, q * d, (q + 1) * d),
                            selected[q], nanos, null);
                }
                metrics.queriesDecoded.add(count);
            }
        }
        return java.util.Arrays.asList(out);
    }

    /** The output row of {@code input}: its ids, then the output, selection, time and error as the options ask. */
    private Row output(DecodePlan p, Row input, float[] out, int[] selected, long nanos, String error) {
        QueriesSchema s = schema;
        Integer head = input.isNullAt(s.head()) ? null : input.getInt(s.head());
        List<Object> values = new ArrayList<>(9);
        values.add(input.get(s.queryId()));
        values.add(input.isNullAt(s.contextId()) ? null : input.getString(s.contextId()));
        values.add(input.isNullAt(s.layer()) ? null : input.getInt(s.layer()));
        values.add(head);
        values.add(head == null || input.isNullAt(s.contextId()) || input.isNullAt(s.layer()) ? null
                : p.kvHead(input.getString(s.contextId()), input.getInt(s.layer()), head));
        values.add(out);
        if (p.options().withSelected()) {
            values.add(selected == null ? null : trimmed(selected));
        }
        values.add(nanos);
        if (p.options().routeErrors()) {
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

    private HeadKey check(DecodePlan p, Row row) {
        QueriesSchema s = schema;
        return QueryCheck.head(p, row.isNullAt(s.contextId()) ? null : row.getString(s.contextId()),
                row.isNullAt(s.layer()) ? null : row.getInt(s.layer()),
                row.isNullAt(s.head()) ? null : row.getInt(s.head()), QueryCheck.queryId(s.queryIdText(row)));
    }

    private float[] vector(DecodePlan p, Row row, HeadKey key) {
        return QueryCheck.vector(row.isNullAt(schema.query()), () -> schema.queryType().floats(row, schema.query()),
                p.summaries().get(key).dim(), QueryCheck.queryId(schema.queryIdText(row)));
    }
}
