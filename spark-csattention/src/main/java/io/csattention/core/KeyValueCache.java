package io.csattention.core;

import io.csattention.kernel.HalfBits;
import io.csattention.kernel.VectorKernels;

import java.util.Arrays;
import java.util.Locale;

/**
 * The keys and values of one attention head (or KV head), growable at the end: a context's keys from the prefill,
 * then one row per generated token. Key i sits at position i.
 *
 * <p>Rows are stored in float32 or, to halve a long context's memory, in float16 or bfloat16 ({@link Precision}).
 * Half rows are rounded to nearest even once, when appended; every product reads them widened to float32 in chunks
 * ({@link VectorKernels#halfToFloat}) and accumulates in float32, in the same operation order as a float32 cache, so a
 * half cache gives the same bits as a float32 cache holding the rounded values.
 */
public final class KeyValueCache {

    /** How the rows are stored. */
    public enum Precision {
        F32(Float.BYTES), F16(Short.BYTES), BF16(Short.BYTES);

        /** What model contexts use unless told otherwise: half the memory of float32, 11 significant bits. */
        public static final Precision DEFAULT = F16;

        private final int bytes;

        Precision(int bytes) {
            this.bytes = bytes;
        }

        /** Bytes of one stored value. */
        public int bytes() {
            return bytes;
        }

        /** The lower-case name used by options ({@code f32}, {@code f16}, {@code bf16}). */
        public String id() {
            return name().toLowerCase(Locale.ROOT);
        }

        /** The precision named {@code text} (case-insensitive); one line naming the value otherwise. */
        public static Precision parse(String text) {
            for (Precision p : values()) {
                if (p.id().equalsIgnoreCase(text.trim())) {
                    return p;
                }
            }
            throw new IllegalArgumentException("unknown KV precision '" + text + "'; expected one of f32, f16, bf16");
        }
    }

    /** Rows widened per pass by the chunked products of a half cache: a few KB of floats, kept in L1/L2. */
    private static final int CHUNK_ROWS = 64;
    private static final ThreadLocal<float[][]> SCRATCH = ThreadLocal.withInitial(() -> new float[2][0]);
    private static final ThreadLocal<int[]> IDENTITY = ThreadLocal.withInitial(() -> new int[0]);

    private final int dim;
    private final Precision precision;
    private float[] keys;
    private float[] values;
    /** A half cache's own rows [baseRows, size), row r at {@code (r - baseRows) * dim}. */
    private short[] halfKeys;
    private short[] halfValues;
    private int size;
    /**
     * A fork's rows [0, baseRows): the arrays of the caches it was forked from, shared and never written (a cache
     * only ever writes the row past its last), in segments: segment i holds rows [baseStarts[i], baseStarts[i + 1])
     * (the last ends at baseRows), row r at {@code (r - baseStarts[i]) * dim}. Null when not a fork.
     */
    private final short[][] baseKeys;
    private final short[][] baseValues;
    private final int[] baseStarts;
    private final int baseRows;

    /** An empty float32 cache. */
    public KeyValueCache(int dim, int capacity) {
        this(dim, capacity, Precision.F32);
    }

    public KeyValueCache(int dim, int capacity, Precision precision) {
        this.dim = Check.positive(dim, "dim");
        this.precision = java.util.Objects.requireNonNull(precision, "precision");
        int length = Math.multiplyExact(Math.max(1, capacity), dim);
        if (precision == Precision.F32) {
            this.keys = new float[length];
            this.values = new float[length];
        } else {
            this.halfKeys = new short[length];
            this.halfValues = new short[length];
        }
        this.baseKeys = null;
        this.baseValues = null;
        this.baseStarts = null;
        this.baseRows = 0;
    }

    /** A fork of a half cache: rows [0, rows) read from the given segments, room for 64 rows of its own. */
    private KeyValueCache(int dim, Precision precision, short[][] baseKeys, short[][] baseValues, int[] baseStarts,
                          int rows) {
        this.dim = dim;
        this.precision = precision;
        this.halfKeys = new short[64 * dim];
        this.halfValues = new short[64 * dim];
        this.baseKeys = baseKeys;
        this.baseValues = baseValues;
        this.baseStarts = baseStarts;
        this.baseRows = rows;
        this.size = rows;
    }

    /** A float32 cache that starts as a copy of the given keys and values. */
    public static KeyValueCache of(FloatMatrix keys, FloatMatrix values) {
        return of(keys, values, Precision.F32);
    }

    /** A cache of {@code precision} that starts with the given keys and values (rounded when half). */
    public static KeyValueCache of(FloatMatrix keys, FloatMatrix values, Precision precision) {
        Check.that(keys.rows() == values.rows(), "keys and values must have the same rows; values.rows="
                + values.rows() + ", expected", "keys.rows", keys.rows());
        Check.that(keys.cols() == values.cols(), "keys and values must have the same dim; values.cols="
                + values.cols() + ", expected", "keys.cols", keys.cols());
        KeyValueCache cache = new KeyValueCache(keys.cols(), keys.rows() + 64, precision);
        for (int r = 0; r < keys.rows(); r++) {
            cache.append(keys.data(), r * keys.cols(), values.data(), r * values.cols());
        }
        return cache;
    }

    /** A deep copy with the same precision and rows (room for 64 more), in arrays of its own. */
    public KeyValueCache copy() {
        KeyValueCache copy = new KeyValueCache(dim, size + 64, precision);
        if (precision == Precision.F32) {
            System.arraycopy(keys, 0, copy.keys, 0, size * dim);
            System.arraycopy(values, 0, copy.values, 0, size * dim);
        } else {
            copyHalfRows(false, copy.halfKeys);
            copyHalfRows(true, copy.halfValues);
        }
        copy.size = size;
        return copy;
    }

    private void copyHalfRows(boolean ofValues, short[] dst) {
        for (int s = 0; baseStarts != null && s < baseStarts.length; s++) {
            int end = s + 1 < baseStarts.length ? baseStarts[s + 1] : baseRows;
            System.arraycopy((ofValues ? baseValues : baseKeys)[s], 0, dst, baseStarts[s] * dim,
                    (end - baseStarts[s]) * dim);
        }
        System.arraycopy(ofValues ? halfValues : halfKeys, 0, dst, baseRows * dim, (size - baseRows) * dim);
    }

    /**
     * A cache that holds this one's rows and then its own: for many continuations of one context (the forks of a
     * session). A half cache's fork reads this cache's rows from its arrays, shared, not copied (a fork of a 32K
     * context holds the rows it appends, not another copy of the context), and appends into arrays of its own; this
     * cache may go on appending, which never writes a row a fork reads. A float32 cache's fork is a {@link #copy}:
     * its arrays are read in place ({@link #keys()}), so they stay whole.
     *
     * <p>Reads are as safe across threads as the fork's publication: the shared arrays are captured here, by the
     * thread that forks.
     */
    public KeyValueCache fork() {
        if (precision == Precision.F32) {
            return copy();
        }
        int inherited = baseStarts == null ? 0 : baseStarts.length;
        boolean ownRows = size > baseRows;
        int segments = inherited + (ownRows ? 1 : 0);
        short[][] k = new short[segments][];
        short[][] v = new short[segments][];
        int[] starts = new int[segments];
        for (int s = 0; s < inherited; s++) {
            k[s] = baseKeys[s];
            v[s] = baseValues[s];
            starts[s] = baseStarts[s];
        }
        if (ownRows) {
            k[inherited] = halfKeys;
            v[inherited] = halfValues;
            starts[inherited] = baseRows;
        }
        return new KeyValueCache(dim, precision, k, v, starts, size);
    }

    /** Rows this cache reads from the caches it was forked from (0 when it is not a fork). */
    public int sharedRows() {
        return baseRows;
    }

    /**
     * Appends one key/value row and returns its index. A float16 cache refuses a finite value beyond float16's
     * range (it would become infinite and turn attention into NaN) with one line naming it.
     */
    public int append(float[] key, int keyOff, float[] value, int valueOff) {
        int capacity = precision == Precision.F32 ? keys.length : halfKeys.length;
        int own = size - baseRows;
        if ((own + 1) * dim > capacity) {
            // an eighth more (at least 64 rows): a long context does not hold half of it again, unused
            int rows = Math.max(own + 1, own + Math.max(64, own >> 3));
            if (precision == Precision.F32) {
                keys = Arrays.copyOf(keys, rows * dim);
                values = Arrays.copyOf(values, rows * dim);
            } else {
                halfKeys = Arrays.copyOf(halfKeys, rows * dim);
                halfValues = Arrays.copyOf(halfValues, rows * dim);
            }
        }
        int off = own * dim;
        if (precision == Precision.F32) {
            System.arraycopy(key, keyOff, keys, off, dim);
            System.arraycopy(value, valueOff, values, off, dim);
        } else {
            for (int i = 0; i < dim; i++) {
                halfKeys[off + i] = round(key[keyOff + i], "key", i);
                halfValues[off + i] = round(value[valueOff + i], "value", i);
            }
        }
        return size++;
    }

    private short round(float v, String what, int i) {
        if (precision == Precision.BF16) {
            return HalfBits.bfloat16FromFloat(v);
        }
        short h = HalfBits.fromFloat(v);
        if ((h & 0x7c00) == 0x7c00 && Float.isFinite(v)) {
            throw new IllegalArgumentException(what + " " + size + " dimension " + i + " is " + v
                    + ", beyond float16's range (|x| <= " + HalfBits.FLOAT16_MAX + "); use KV precision bf16 or f32");
        }
        return h;
    }

    public int size() {
        return size;
    }

    public int dim() {
        return dim;
    }

    public Precision precision() {
        return precision;
    }

    /** Bytes of the rows held: keys and values, at the stored precision. */
    public long bytes() {
        return 2L * size * dim * precision.bytes();
    }

    /**
     * Bytes allocated for this cache's own keys and values (its rows and the room for more), at the stored
     * precision; a fork's shared rows are counted by the cache that holds them.
     */
    public long allocatedBytes() {
        long elements = precision == Precision.F32 ? keys.length : halfKeys.length;
        return 2L * elements * precision.bytes();
    }

    /**
     * The backing float32 key array (row-major, valid for rows [0, size)); shared, not copied. Only a float32 cache
     * has one: half caches are read through {@link #keyRows} and the products below.
     */
    public float[] keys() {
        requireFloat32();
        return keys;
    }

    /** The backing float32 value array, as {@link #keys()}. */
    public float[] values() {
        requireFloat32();
        return values;
    }

    private void requireFloat32() {
        if (precision != Precision.F32) {
            throw new IllegalStateException("this KV cache stores " + precision.id()
                    + " rows; its float32 array is not kept (read rows with keyRows/valueRows)");
        }
    }

    /** Rows [from, from + count) of the keys, as floats, into {@code dst[dstOff ..)}. */
    public void keyRows(VectorKernels kernels, int from, int count, float[] dst, int dstOff) {
        rows(kernels, false, from, count, dst, dstOff);
    }

    /** Rows [from, from + count) of the values, as floats, into {@code dst[dstOff ..)}. */
    public void valueRows(VectorKernels kernels, int from, int count, float[] dst, int dstOff) {
        rows(kernels, true, from, count, dst, dstOff);
    }

    private void rows(VectorKernels kernels, boolean ofValues, int from, int count, float[] dst, int dstOff) {
        if (precision == Precision.F32) {
            System.arraycopy(ofValues ? values : keys, from * dim, dst, dstOff, count * dim);
            return;
        }
        boolean bf16 = precision == Precision.BF16;
        int end = from + count;
        for (int row = from; row < end; ) {
            short[] source;
            int first;
            int stop;
            if (row >= baseRows) {
                source = ofValues ? halfValues : halfKeys;
                first = baseRows;
                stop = end;
            } else {
                int s = baseStarts.length - 1;
                while (baseStarts[s] > row) {
                    s--;
                }
                source = (ofValues ? baseValues : baseKeys)[s];
                first = baseStarts[s];
                stop = Math.min(end, s + 1 < baseStarts.length ? baseStarts[s + 1] : baseRows);
            }
            kernels.halfToFloat(source, (row - first) * dim, dst, dstOff + (row - from) * dim, (stop - row) * dim,
                    bf16);
            row = stop;
        }
    }

    /** Key rows {@code ids[idsOff .. idsOff+count)}, as floats, packed into {@code dst[0 ..)}. */
    public void keyRowsAt(VectorKernels kernels, int[] ids, int idsOff, int count, float[] dst) {
        gather(kernels, false, ids, idsOff, count, dst);
    }

    /** Value rows {@code ids[idsOff .. idsOff+count)}, as floats, packed into {@code dst[0 ..)}. */
    public void valueRowsAt(VectorKernels kernels, int[] ids, int idsOff, int count, float[] dst) {
        gather(kernels, true, ids, idsOff, count, dst);
    }

    /** Rows {@code ids[idsOff .. idsOff+count)} of the keys or values, as floats, packed into {@code dst[0 ..)}. */
    private void gather(VectorKernels kernels, boolean ofValues, int[] ids, int idsOff, int count, float[] dst) {
        for (int j = 0; j < count; j++) {
            rows(kernels, ofValues, ids[idsOff + j], 1, dst, j * dim);
        }
    }

    /** {@code out[outOff + j] = q . key(from + j)} for j in [0, count). */
    public void dotKeys(VectorKernels kernels, float[] q, int qOff, int from, int count, float[] out, int outOff) {
        if (precision == Precision.F32) {
            kernels.dotRows(q, qOff, keys, dim, 0, dim, from, count, out, outOff);
            return;
        }
        float[] chunk = scratch(0, CHUNK_ROWS * dim);
        for (int done = 0; done < count; done += CHUNK_ROWS) {
            int n = Math.min(CHUNK_ROWS, count - done);
            keyRows(kernels, from + done, n, chunk, 0);
            kernels.dotRows(q, qOff, chunk, dim, 0, dim, 0, n, out, outOff + done);
        }
    }

    /** {@code out[outOff ..) += weights[wOff + j] * value(from + j)} for j in [0, count), in order. */
    public void addValues(VectorKernels kernels, float[] weights, int wOff, int from, int count, float[] out,
                          int outOff) {
        if (precision == Precision.F32) {
            for (int j = 0; j < count; j++) {
                kernels.axpy(weights[wOff + j], values, (from + j) * dim, out, outOff, dim);
            }
            return;
        }
        float[] chunk = scratch(1, CHUNK_ROWS * dim);
        for (int done = 0; done < count; done += CHUNK_ROWS) {
            int n = Math.min(CHUNK_ROWS, count - done);
            valueRows(kernels, from + done, n, chunk, 0);
            for (int j = 0; j < n; j++) {
                kernels.axpy(weights[wOff + done + j], chunk, j * dim, out, outOff, dim);
            }
        }
    }

    /** {@code out[j] = q . key(ids[j])} for j in [0, count), as {@link VectorKernels#dotSelectedRows}. */
    public void dotSelectedKeys(VectorKernels kernels, float[] q, int qOff, int[] ids, int count, float[] out) {
        if (precision == Precision.F32) {
            kernels.dotSelectedRows(q, qOff, keys, dim, ids, count, out);
            return;
        }
        float[] chunk = scratch(0, CHUNK_ROWS * dim);
        for (int done = 0; done < count; done += CHUNK_ROWS) {
            int n = Math.min(CHUNK_ROWS, count - done);
            gather(kernels, false, ids, done, n, chunk);
            kernels.dotRows(q, qOff, chunk, dim, 0, dim, 0, n, out, done);
        }
    }

    /**
     * {@code out[outOff .. outOff+dim) = sum_j weights[j] * value(ids[j])} for j in [0, count), as
     * {@link VectorKernels#sumSelectedRows}.
     */
    public void sumSelectedValues(VectorKernels kernels, float[] weights, int[] ids, int count, float[] out,
                                  int outOff) {
        if (precision == Precision.F32) {
            kernels.sumSelectedRows(weights, values, dim, ids, count, out, outOff);
            return;
        }
        // all the chosen rows widened at once, then the float32 cache's own kernel over them: the same operations in
        // the same order (its running sums span the rows), so the same bits as a float32 cache of the rounded values
        float[] rows = scratch(1, count * dim);
        gather(kernels, true, ids, 0, count, rows);
        kernels.sumSelectedRows(weights, rows, dim, identity(count), count, out, outOff);
    }

    private static int[] identity(int count) {
        int[] ids = IDENTITY.get();
        if (ids.length < count) {
            ids = new int[Math.max(count, 2 * ids.length)];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = i;
            }
            IDENTITY.set(ids);
        }
        return ids;
    }

    private static float[] scratch(int which, int length) {
        float[][] buffers = SCRATCH.get();
        if (buffers[which].length < length) {
            buffers[which] = new float[length];
        }
        return buffers[which];
    }

    /** The keys as a float32 matrix (a copy). */
    public FloatMatrix keyMatrix() {
        float[] data = new float[size * dim];
        rows(io.csattention.kernel.Kernels.preferred(), false, 0, size, data, 0);
        return new FloatMatrix(size, dim, data);
    }

    /** The values as a float32 matrix (a copy). */
    public FloatMatrix valueMatrix() {
        float[] data = new float[size * dim];
        rows(io.csattention.kernel.Kernels.preferred(), true, 0, size, data, 0);
        return new FloatMatrix(size, dim, data);
    }
}
