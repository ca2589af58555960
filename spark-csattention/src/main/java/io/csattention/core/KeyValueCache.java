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
    private short[] halfKeys;
    private short[] halfValues;
    private int size;

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

    /** A deep copy with the same precision and rows (room for 64 more). */
    public KeyValueCache copy() {
        KeyValueCache copy = new KeyValueCache(dim, size + 64, precision);
        int length = size * dim;
        if (precision == Precision.F32) {
            System.arraycopy(keys, 0, copy.keys, 0, length);
            System.arraycopy(values, 0, copy.values, 0, length);
        } else {
            System.arraycopy(halfKeys, 0, copy.halfKeys, 0, length);
            System.arraycopy(halfValues, 0, copy.halfValues, 0, length);
        }
        copy.size = size;
        return copy;
    }

    /**
     * Appends one key/value row and returns its index. A float16 cache refuses a finite value beyond float16's
     * range (it would become infinite and turn attention into NaN) with one line naming it.
     */
    public int append(float[] key, int keyOff, float[] value, int valueOff) {
        int capacity = precision == Precision.F32 ? keys.length : halfKeys.length;
        if ((size + 1) * dim > capacity) {
            // an eighth more (at least 64 rows): a fork of a long context that adds a few hundred tokens keeps its
            // copy near the context's size (half more was 50% of the context's K and V per fork, unused)
            int rows = Math.max(size + 1, size + Math.max(64, size >> 3));
            if (precision == Precision.F32) {
                keys = Arrays.copyOf(keys, rows * dim);
                values = Arrays.copyOf(values, rows * dim);
            } else {
                halfKeys = Arrays.copyOf(halfKeys, rows * dim);
                halfValues = Arrays.copyOf(halfValues, rows * dim);
            }
        }
        int off = size * dim;
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

    /** Bytes allocated for keys and values (the rows held and the room for more), at the stored precision. */
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
        rows(kernels, keys, halfKeys, from, count, dst, dstOff);
    }

    /** Rows [from, from + count) of the values, as floats, into {@code dst[dstOff ..)}. */
    public void valueRows(VectorKernels kernels, int from, int count, float[] dst, int dstOff) {
        rows(kernels, values, halfValues, from, count, dst, dstOff);
    }

    private void rows(VectorKernels kernels, float[] full, short[] half, int from, int count, float[] dst,
                      int dstOff) {
        if (precision == Precision.F32) {
            System.arraycopy(full, from * dim, dst, dstOff, count * dim);
        } else {
            kernels.halfToFloat(half, from * dim, dst, dstOff, count * dim, precision == Precision.BF16);
        }
    }

    /** Key rows {@code ids[idsOff .. idsOff+count)}, as floats, packed into {@code dst[0 ..)}. */
    public void keyRowsAt(VectorKernels kernels, int[] ids, int idsOff, int count, float[] dst) {
        gather(kernels, keys, halfKeys, ids, idsOff, count, dst);
    }

    /** Value rows {@code ids[idsOff .. idsOff+count)}, as floats, packed into {@code dst[0 ..)}. */
    public void valueRowsAt(VectorKernels kernels, int[] ids, int idsOff, int count, float[] dst) {
        gather(kernels, values, halfValues, ids, idsOff, count, dst);
    }

    /** Rows {@code ids[0 .. count)} of the keys, as floats, packed into {@code dst[0 ..)}. */
    private void gather(VectorKernels kernels, float[] full, short[] half, int[] ids, int idsOff, int count,
                        float[] dst) {
        for (int j = 0; j < count; j++) {
            rows(kernels, full, half, ids[idsOff + j], 1, dst, j * dim);
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
            gather(kernels, keys, halfKeys, ids, done, n, chunk);
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
        gather(kernels, values, halfValues, ids, 0, count, rows);
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
        rows(io.csattention.kernel.Kernels.preferred(), keys, halfKeys, 0, size, data, 0);
        return new FloatMatrix(size, dim, data);
    }

    /** The values as a float32 matrix (a copy). */
    public FloatMatrix valueMatrix() {
        float[] data = new float[size * dim];
        rows(io.csattention.kernel.Kernels.preferred(), values, halfValues, 0, size, data, 0);
        return new FloatMatrix(size, dim, data);
    }
}
