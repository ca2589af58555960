package io.csattention.spark;

import io.csattention.core.CSAttentionIndex;
import io.csattention.core.Check;
import io.csattention.core.FloatMatrix;
import io.csattention.core.Rope;
import io.csattention.core.RopeInfo;
import io.csattention.format.IndexedHead;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.connector.write.DataWriter;
import org.apache.spark.sql.connector.write.DataWriterFactory;
import org.apache.spark.sql.connector.write.WriterCommitMessage;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;

/**
 * The prefill stage on an executor: rows arrive clustered by context and sorted by (context, layer, KV head, chunk)
 * (the write asks Spark for that); each head's chunks are concatenated, its index is built once, and the file is
 * written into this task attempt's directory. The task commit hands the file list to the job commit.
 */
final class IndexBuildWriter implements DataWriter<InternalRow> {

    /** Creates one writer per task attempt on the executors. */
    record Factory(ContextsSchema schema, CSAttentionOptions options, HadoopConf conf, String root, String jobId,
                   CSAttentionMetrics metrics) implements DataWriterFactory {
        @Override
        public DataWriter<InternalRow> createWriter(int partitionId, long taskId) {
            return new IndexBuildWriter(this, partitionId, taskId);
        }
    }

    private final Factory f;
    private final int partition;
    private final FileSystem fs;
    private final Path attemptDir;
    private final String attemptName;
    private final List<IndexSet.Entry> entries = new ArrayList<>();
    private HeadKey current;
    private String lastContext;
    private int dim;
    private int lastChunk = Integer.MIN_VALUE;
    private final FloatBuilder keys = new FloatBuilder();
    private final FloatBuilder values = new FloatBuilder();
    private final FloatBuilder prefill = new FloatBuilder();
    private final java.io.ByteArrayOutputStream positionBytes = new java.io.ByteArrayOutputStream();
    private int positionRows;
    private HeadShape shape;
    private boolean deviceChosen;
    private io.csattention.device.DecodeBackend gpu;

    /** What a head's first row says about its GQA group and RoPE (see {@link ContextsSchema}). */
    private record HeadShape(int group, double ropeBase, Rope.Style ropeStyle, float[] ropeFrequencies) {
    }

    private IndexBuildWriter(Factory f, int partition, long taskId) {
        this.f = f;
        this.partition = partition;
        this.attemptName = IndexSet.attemptDirName(partition, taskId);
        Path root = new Path(f.root());
        this.attemptDir = new Path(IndexSet.jobTemp(root, f.jobId()), attemptName);
        try {
            this.fs = root.getFileSystem(f.conf().get());
            fs.mkdirs(attemptDir);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Override
    public void write(InternalRow row) throws IOException {
        ContextsSchema s = f.schema();
        HeadKey key = s.key(row);
        if (!key.equals(current)) {
            finishHead();
            current = key;
            dim = s.dim(row, key);
            lastChunk = Integer.MIN_VALUE;
            shape = shape(row, key);
            if (!key.contextId().equals(lastContext)) {
                lastContext = key.contextId();
                f.metrics().contextsPrefilled.add(1);
            }
        }
        if (s.chunk() >= 0 && !row.isNullAt(s.chunk())) {
            int chunk = row.getInt(s.chunk());
            if (chunk == lastChunk) {
                throw new IllegalArgumentException("chunk must be unique per head (" + key + "); chunk=" + chunk);
            }
            lastChunk = chunk;
        }
        if (row.isNullAt(s.keys()) || row.isNullAt(s.values())) {
            throw new IllegalArgumentException("keys and values must not be null (" + key + "); keys="
                    + (row.isNullAt(s.keys()) ? "null" : "set") + ", values="
                    + (row.isNullAt(s.values()) ? "null" : "set"));
        }
        keys.add(s.keysType().floats(row, s.keys(), dim));
        values.add(s.valuesType().floats(row, s.values(), dim));
        if (!row.isNullAt(s.prefill())) {
            float[] rows = s.prefillType().floats(row, s.prefill(), dim);
            prefill.add(rows);
            if (s.prefillPositions() >= 0) {
                addPositions(row, key, rows.length / dim);
            }
        }
    }

    /** Appends a chunk's prefill_positions: one integer >= 0 per prefill query row of the chunk. */
    private void addPositions(InternalRow row, HeadKey key, int rows) {
        ContextsSchema s = f.schema();
        if (row.isNullAt(s.prefillPositions())) {
            throw new IllegalArgumentException("prefill_positions must not be null when the table has the column ("
                    + key + "); prefill_positions=null");
        }
        org.apache.spark.sql.catalyst.util.ArrayData a = row.getArray(s.prefillPositions());
        if (a.numElements() != rows) {
            throw new IllegalArgumentException("prefill_positions must hold one position per prefill query row "
                    + rows + " (" + key + "); prefill_positions.length=" + a.numElements());
        }
        boolean longs = ((org.apache.spark.sql.types.ArrayType) s.prefillPositionsType()).elementType()
                == org.apache.spark.sql.types.DataTypes.LongType;
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(8 * rows);
        for (int i = 0; i < rows; i++) {
            long p = a.isNullAt(i) ? -1 : longs ? a.getLong(i) : a.getInt(i);
            if (p < 0) {
                throw new IllegalArgumentException("prefill_positions must hold integers >= 0 (" + key
                        + "); prefill_positions[" + (positionRows + i) + "]=" + (a.isNullAt(i) ? "null" : p));
            }
            b.putLong(p);
        }
        positionBytes.writeBytes(b.array());
        positionRows += rows;
    }

    /** The head's group size and RoPE: its first row's optional columns, else the options. */
    private HeadShape shape(InternalRow row, HeadKey key) {
        ContextsSchema s = f.schema();
        CSAttentionOptions o = f.options();
        int group = o.queryHeadsPerKvHead() > 0 ? o.queryHeadsPerKvHead() : 1;
        if (s.group() >= 0 && !row.isNullAt(s.group())) {
            group = row.getInt(s.group());
            if (group <= 0) {
                throw new IllegalArgumentException("query_heads_per_kv_head must be > 0 (" + key
                        + "); query_heads_per_kv_head=" + group);
            }
        }
        double base = o.ropeBase();
        if (s.ropeBase() >= 0 && !row.isNullAt(s.ropeBase())) {
            base = s.ropeBaseType() == org.apache.spark.sql.types.DataTypes.FloatType ? row.getFloat(s.ropeBase())
                    : row.getDouble(s.ropeBase());
            if (base != 0 && !(base > 1)) {
                throw new IllegalArgumentException("rope_base must be > 1 (or 0 for no RoPE) (" + key
                        + "); rope_base=" + base);
            }
        }
        Rope.Style style = o.ropeStyle();
        if (s.ropeStyle() >= 0 && !row.isNullAt(s.ropeStyle())) {
            String text = row.getUTF8String(s.ropeStyle()).toString();
            try {
                style = Rope.Style.valueOf(text.toUpperCase(java.util.Locale.ROOT));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("rope_style must be interleaved or half (" + key
                        + "); rope_style=" + text);
            }
        }
        float[] frequencies = s.ropeFrequencies() >= 0 && !row.isNullAt(s.ropeFrequencies())
                ? row.getArray(s.ropeFrequencies()).toFloatArray() : null;
        return new HeadShape(group, base, style, frequencies);
    }

    /**
     * The head's RoPE for the index, or null without one: positions from prefill_positions, else token-major
     * (row r at r / (rows / N), as the model runtime stacks a group's queries); lists built for position N.
     */
    private RopeInfo rope(int keyRows, int prefillRows, String where) {
        if (shape.ropeBase() == 0) {
            return null;
        }
        long[] positions = new long[prefillRows];
        if (positionRows > 0 || f.schema().prefillPositions() >= 0) {
            java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(positionBytes.toByteArray());
            for (int i = 0; i < prefillRows; i++) {
                positions[i] = b.getLong();
            }
        } else {
            Check.that(prefillRows % keyRows == 0, "prefill_queries must hold a whole number of rows per key to "
                    + "infer their positions (or give prefill_positions)" + where, "prefill_queries.rows/keys",
                    prefillRows + "/" + keyRows);
            int perToken = prefillRows / keyRows;
            for (int i = 0; i < prefillRows; i++) {
                positions[i] = i / perToken;
            }
        }
        return new RopeInfo(shape.ropeBase(), shape.ropeStyle(), positions, keyRows, RopeInfo.DEFAULT_DECODE_SPAN,
                shape.ropeFrequencies());
    }

    private void finishHead() throws IOException {
        if (current == null) {
            return;
        }
        String where = " (" + current + ")";
        FloatMatrix k = matrix(keys, "keys", where);
        FloatMatrix v = matrix(values, "values", where);
        FloatMatrix q = matrix(prefill, "prefill_queries", where);
        Check.that(k.rows() == v.rows(), "values must have as many rows as keys " + k.rows() + where, "values.rows",
                v.rows());
        Check.that(k.rows() > 0 && q.rows() > 0, "keys and prefill_queries must hold at least one row" + where,
                "rows", k.rows() + "/" + q.rows());
        RopeInfo rope = rope(k.rows(), q.rows(), where);
        io.csattention.device.DecodeBackend gpu = buildGpu(rope);
        CSAttentionIndex index;
        try {
            index = gpu != null ? gpu.buildIndex(k, q, f.options().settings())
                    : CSAttentionIndex.build(f.options().kernels(), k, q, f.options().settings(), rope);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(e.getMessage() + where);
        }
        IndexedHead head = new IndexedHead(current.contextId(), current.layer(), current.kvHead(), index, k, v);
        entries.add(IndexSet.writeHead(fs, attemptDir, entries.size(), head, shape.group()));
        f.metrics().headsBuilt.add(1);
        keys.clear();
        values.clear();
        prefill.clear();
        positionBytes.reset();
        positionRows = 0;
    }

    /**
     * The GPU this head's index is built on, or null for the CPU build: the task's GPU ({@link ExecutorDevice}, chosen
     * on the task's first head; under {@code gpu} without one the task fails once), except for a head with RoPE,
     * which the GPU build cannot index position-free.
     */
    private io.csattention.device.DecodeBackend buildGpu(RopeInfo rope) {
        io.csattention.device.Backends.Mode mode = f.options().device();
        if (!deviceChosen) {
            try {
                gpu = ExecutorDevice.forTask(mode);
            } catch (IllegalArgumentException e) {
                throw QueryCheck.notRetried(e.getMessage(), e);
            }
            deviceChosen = true;
        }
        try {
            return ExecutorDevice.forBuild(gpu, mode, current, rope == null ? 0 : shape.ropeBase());
        } catch (IllegalArgumentException e) {
            throw QueryCheck.notRetried(e.getMessage(), e);
        }
    }

    private FloatMatrix matrix(FloatBuilder b, String name, String where) {
        Check.that(b.size % dim == 0, name + " must hold whole rows of head_dim " + dim + where, name + ".floats",
                b.size);
        float[] data = b.toArray();
        try {
            Check.finite(data, b.size / dim, dim, name);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(e.getMessage() + where);
        }
        return new FloatMatrix(b.size / dim, dim, data);
    }

    @Override
    public WriterCommitMessage commit() throws IOException {
        finishHead();
        return new TaskCommit(new IndexSet.TaskFiles(partition, attemptName, List.copyOf(entries)));
    }

    /**
     * Deletes this attempt's files, and the job's temporary directory and {@code _temporary/} when that leaves them
     * empty: a task killed after its job was aborted stops after the driver has removed them, and its late writes
     * recreated them.
     */
    @Override
    public void abort() throws IOException {
        fs.delete(attemptDir, true);
        Path jobDir = attemptDir.getParent();
        IndexSet.removeIfEmpty(fs, jobDir);
        IndexSet.removeIfEmpty(fs, jobDir.getParent());
    }

    @Override
    public void close() {
    }

    /** A task's files, sent to the driver's job commit. */
    record TaskCommit(IndexSet.TaskFiles files) implements WriterCommitMessage {
    }

    /** A growable float array. */
    private static final class FloatBuilder {
        float[] data = new float[1024];
        int size;

        void add(float[] more) {
            if (size + more.length > data.length) {
                data = java.util.Arrays.copyOf(data, Math.max(size + more.length, data.length * 2));
            }
            System.arraycopy(more, 0, data, size, more.length);
            size += more.length;
        }

        float[] toArray() {
            return java.util.Arrays.copyOf(data, size);
        }

        void clear() {
            size = 0;
            if (data.length > 1 << 20) {
                data = new float[1024];
            }
        }
    }
}
