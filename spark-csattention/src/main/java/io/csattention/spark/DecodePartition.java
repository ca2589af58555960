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

import scala.Tuple2;

/**
 * The decode stage on an executor: the partition's query rows are taken in blocks of {@code blockSize}; each row is
 * checked against the broadcast metadata, its head is borrowed from the executor cache (loaded once per executor
 * while the budget holds it; a task holds one head at a time), and the selector (the rows of one head together) and
 * exact attention give the output. The result depends only on the row and the committed index set, so a retried
 * task writes the same rows. A bad row ({@link QueryCheck}) is routed, or fails the task once, not retried.
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

    /**
     * Rows of a queries file the DataSource read ({@link QueriesDecodeScan}) takes at once and decodes grouped by
     * head: a task borrows each head once per window (once per file for files of at most this many rows) while the
     * rows keep the file's order; about 10 MB of rows at d = 128.
     */
    static final int FILE_WINDOW = 4096;

    @Override
    public Iterator<Row> call(Iterator<Row> input) {
        return blocks(input, plan.value().options().blockSize(), r -> r, (r, out) -> out);
    }

    /** The DataSource read's decode: {@link #FILE_WINDOW} rows at a time (or the block size, when larger). */
    Iterator<Row> file(Iterator<Row> input) {
        return blocks(input, Math.max(FILE_WINDOW, plan.value().options().blockSize()), r -> r, (r, out) -> out);
    }

    /**
     * The decode of rows tagged with their place in the input ({@link CSAttention#decode} planned by head): the tags
     * come out with the output rows, in the order the rows came in.
     */
    Iterator<Tuple2<Long, Row>> tagged(Iterator<Tuple2<Long, Row>> input) {
        return blocks(input, plan.value().options().blockSize(), Tuple2::_2,
                (t, out) -> new Tuple2<>(t._1(), out));
    }

    /**
     * The task's rows in blocks of {@code blockSize} rows, decoded in their order. The task holds at most one head of
     * the executor cache at a time (the cache's bound and its freedom from deadlock depend on it): it keeps its head
     * from one block to the next while the rows stay on it, releases it before it borrows another, and releases it
     * when its rows end or the task ends.
     */
    private <T> Iterator<T> blocks(Iterator<T> input, int blockSize, java.util.function.Function<T, Row> rowOf,
                                   java.util.function.BiFunction<T, Row, T> withOutput) {
        DecodePlan p = plan.value();
        Held held = new Held();
        org.apache.spark.TaskContext task = org.apache.spark.TaskContext.get();
        if (task != null) {
            task.addTaskCompletionListener((org.apache.spark.util.TaskCompletionListener) context -> held.end());
        }
        return QueryCheck.failOnce(new Iterator<>() {
            private final List<T> block = new ArrayList<>(blockSize);
            private int next;

            @Override
            public boolean hasNext() {
                if (next < block.size()) {
                    return true;
                }
                block.clear();
                next = 0;
                List<T> in = new ArrayList<>(blockSize);
                while (in.size() < blockSize && input.hasNext()) {
                    in.add(input.next());
                }
                List<Row> rows = new ArrayList<>(in.size());
                for (T t : in) {
                    rows.add(rowOf.apply(t));
                }
                List<Row> out = decode(p, rows, held);
                for (int i = 0; i < in.size(); i++) {
                    block.add(withOutput.apply(in.get(i), out.get(i)));
                }
                if (block.isEmpty()) {
                    held.end();
                    return false;
                }
                return true;
            }

            @Override
            public T next() {
                if (!hasNext()) {
                    throw new NoSuchElementException();
                }
                return block.get(next++);
            }
        });
    }

    /**
     * The one head a task holds, and the end of its hold: the lease released, the cache's peak reported; and the
     * task's device, chosen on its first head.
     */
    private final class Held {
        HeadKey key;
        ExecutorIndexCache.Lease lease;
        boolean ended;
        boolean deviceChosen;
        io.csattention.device.DecodeBackend gpu;

        /** The GPU the task decodes on, or null for the CPU; under {@code gpu} without one the task fails once. */
        io.csattention.device.DecodeBackend gpu(DecodePlan p) {
            if (!deviceChosen) {
                try {
                    gpu = ExecutorDevice.forTask(p.options().device());
                } catch (IllegalArgumentException e) {
                    throw QueryCheck.notRetried(e.getMessage(), e);
                }
                deviceChosen = true;
            }
            return gpu;
        }

        LoadedHead take(DecodePlan p, HeadKey wanted) {
            if (lease != null && wanted.equals(key)) {
                return lease.head();
            }
            release();
            try {
                lease = p.borrow(wanted, metrics);
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
            key = wanted;
            return lease.head();
        }

        void release() {
            if (lease != null) {
                lease.close();
                lease = null;
                key = null;
            }
        }

        synchronized void end() {
            release();
            if (!ended) {
                ended = true;
                metrics.cachePeak(ExecutorIndexCache.INSTANCE.peakBytes());
            }
        }
    }

    /**
     * Decodes a block of rows, keeping their order; {@code held} is the head the task holds. The rows of one head are
     * selected together, {@link BlockDecoder#DEFAULT_QUERY_BLOCK} at a time ({@code KeySelector.selectBlock}: the
     * queries share csattention's re-scoring sweep), which selects what one row at a time would; the head the task
     * already holds goes first. A row's {@code decode_nanos} is its share of its group's time.
     */
    private List<Row> decode(DecodePlan p, List<Row> in, Held held) {
        Row[] out = new Row[in.size()];
        float[][] queries = new float[in.size()][];
        long[] positions = new long[in.size()];
        java.util.Map<HeadKey, List<Integer>> byHead = new java.util.LinkedHashMap<>();
        if (held.key != null) {
            byHead.put(held.key, new ArrayList<>());
        }
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
            List<Integer> rows = group.getValue();
            if (rows.isEmpty()) {
                continue;
            }
            LoadedHead loaded = held.take(p, group.getKey());
            int d = loaded.cache.dim();
            io.csattention.device.DecodeBackend gpu = held.gpu(p);
            if (gpu != null) {
                io.csattention.device.ContextDecoder decoder;
                try {
                    decoder = ExecutorDevice.decoder(gpu, p.options().device(), loaded, group.getKey(),
                            p.options().settings());
                } catch (IllegalArgumentException e) {
                    throw QueryCheck.notRetried(e.getMessage(), e);
                }
                if (decoder != null) {
                    onGpu(p, decoder, in, rows, queries, d, out);
                    continue;
                }
            }
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

    /**
     * The rows of one head on its GPU decoder, {@code blockSize} at a time (the decoder's per-launch buffers grow
     * with the block: about {@code blockSize x keys x 4} bytes of list sums). Only indexes without RoPE reach it
     * ({@link ExecutorDevice#decoder}), for which a query's position does not change its selection.
     */
    private void onGpu(DecodePlan p, io.csattention.device.ContextDecoder decoder, List<Row> in, List<Integer> rows,
                       float[][] queries, int d, Row[] out) {
        int blockSize = p.options().blockSize();
        for (int first = 0; first < rows.size(); first += blockSize) {
            int count = Math.min(blockSize, rows.size() - first);
            float[] stacked = new float[count * d];
            for (int q = 0; q < count; q++) {
                System.arraycopy(queries[rows.get(first + q)], 0, stacked, q * d, d);
            }
            long start = System.nanoTime();
            io.csattention.device.DecodedBlock decoded = decoder.decode(
                    new io.csattention.core.FloatMatrix(count, d, stacked));
            long nanos = (System.nanoTime() - start) / count;
            float[] outputs = decoded.outputs().data();
            for (int q = 0; q < count; q++) {
                int at = rows.get(first + q);
                out[at] = output(p, in.get(at), java.util.Arrays.copyOfRange(outputs, q * d, (q + 1) * d),
                        decoded.selected(q), nanos, null);
            }
            metrics.queriesDecoded.add(count);
        }
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
