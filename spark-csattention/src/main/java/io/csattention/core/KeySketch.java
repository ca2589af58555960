package io.csattention.core;

import io.csattention.kernel.VectorKernels;

/**
 * An int8 copy of a head's keys, used to re-score csattention's candidates: row r is stored as
 * {@code codes[r*d .. +d)} with one scale, {@code k[r][i] ~ scales[r] * codes[r*d + i]}, the scale being the row's
 * largest magnitude over 127 (symmetric, per row, round to nearest).
 *
 * <p>Why: re-scoring reads about a fifth of the rows at random, and on a CPU that read is bound by memory, not by
 * arithmetic. A coded row is a quarter of the float row (d + 4 bytes against 4d), and its error (at most half a step,
 * {@code |k|_max / 254} per coordinate) moves a score far less than the list estimate it corrects. The keys attended
 * are still scored exactly from the float cache.
 *
 * <p>Rows are appended as the cache grows (streaming); one writer appends while readers read rows already written.
 */
public final class KeySketch {

    private static final int CODE_MAX = 127;

    private final int dim;
    /** Rows [baseRows, rows), row r at {@code (r - baseRows)}. */
    private byte[] codes;
    private float[] scales;
    private int rows;
    /** A fork's rows [0, baseRows): the sketch it was forked from, shared and never written; null when not a fork. */
    private final byte[] baseCodes;
    private final float[] baseScales;
    private final int baseRows;
    /** Per-thread scratch of a fork's re-scoring: its own candidates' ids, shifted to its own arrays. */
    private static final ThreadLocal<int[]> SUFFIX_IDS = ThreadLocal.withInitial(() -> new int[0]);

    private KeySketch(int dim, int capacity) {
        this(dim, capacity, null, null, 0);
    }

    private KeySketch(int dim, int capacity, byte[] baseCodes, float[] baseScales, int baseRows) {
        this.dim = dim;
        this.codes = new byte[Math.multiplyExact(capacity, dim)];
        this.scales = new float[capacity];
        this.baseCodes = baseCodes;
        this.baseScales = baseScales;
        this.baseRows = baseRows;
        this.rows = baseRows;
    }

    /**
     * A sketch of this one's rows and then rows of its own, for a fork of the cache (a continuation of the context):
     * this sketch's rows are shared, not coded again, and this one may go on appending (it never writes a row the
     * fork reads). A fork of a fork that appended nothing shares what that one shares; one that did is coded anew
     * from {@code cache}.
     */
    public KeySketch fork(KeyValueCache cache) {
        Check.that(cache.size() >= rows && cache.dim() == dim, "a sketch's fork needs a cache holding its " + rows
                + " rows", "cache.size", cache.size());
        KeySketch fork;
        if (baseCodes == null) {
            fork = new KeySketch(dim, 64, codes, scales, rows);
        } else if (rows == baseRows) {
            fork = new KeySketch(dim, 64, baseCodes, baseScales, baseRows);
        } else {
            return of(cache);
        }
        fork.appendUpTo(cache);
        return fork;
    }

    /** The sketch of every key in {@code cache} as it is now. */
    public static KeySketch of(KeyValueCache cache) {
        KeySketch sketch = new KeySketch(cache.dim(), cache.size());
        sketch.appendUpTo(cache);
        return sketch;
    }

    /** Codes the cache's rows past the ones already coded. */
    public void appendUpTo(KeyValueCache cache) {
        Check.that(cache.dim() == dim, "cache must have the sketch's dim " + dim, "cache.dim", cache.dim());
        int target = cache.size();
        if (target - baseRows > scales.length) {
            int capacity = Math.max(target - baseRows, 2 * scales.length);
            codes = java.util.Arrays.copyOf(codes, Math.multiplyExact(capacity, dim));
            scales = java.util.Arrays.copyOf(scales, capacity);
        }
        float[] row = new float[dim];
        for (int r = rows; r < target; r++) {
            cache.keyRows(io.csattention.kernel.Kernels.preferred(), r, 1, row, 0);
            code(row, 0, r - baseRows);
        }
        rows = target;
    }

    private void code(float[] keys, int off, int row) {
        float largest = 0f;
        for (int i = 0; i < dim; i++) {
            largest = Math.max(largest, Math.abs(keys[off + i]));
        }
        if (largest == 0f || !Float.isFinite(largest)) {
            scales[row] = largest == 0f ? 0f : Float.NaN;
            return;
        }
        float scale = largest / CODE_MAX;
        float inverse = 1f / scale;
        for (int i = 0; i < dim; i++) {
            int q = Math.round(keys[off + i] * inverse);
            codes[row * dim + i] = (byte) Math.max(-CODE_MAX, Math.min(CODE_MAX, q));
        }
        scales[row] = scale;
    }

    public int dim() {
        return dim;
    }

    public int rows() {
        return rows;
    }

    /**
     * Row-major codes [capacity, d]; rows past {@link #rows()} are unused. Not for a {@link #fork}, whose rows are in
     * two arrays: it is read through {@link #dotSelected}.
     */
    public byte[] codes() {
        requireWhole();
        return codes;
    }

    /** One scale per row, as {@link #codes()}. */
    public float[] scales() {
        requireWhole();
        return scales;
    }

    private void requireWhole() {
        if (baseCodes != null) {
            throw new IllegalStateException("a forked key sketch keeps its rows in two arrays (shared " + baseRows
                    + ", own " + (rows - baseRows) + "); read it through dotSelected");
        }
    }

    /**
     * {@link VectorKernels#dotSelectedCodes} of {@code x} with the rows {@code ids[idsOff .. idsOff+count)}, which
     * ascend, into {@code out[outOff ..)}: a fork's shared rows and its own in one call each.
     */
    public void dotSelected(VectorKernels kernels, float[] x, int xOff, int[] ids, int idsOff, int count,
                            float[] out, int outOff) {
        dotSelectedMany(kernels, x, xOff, 0, 1, ids, idsOff, count, null, out, outOff);
    }

    /** {@link VectorKernels#dotSelectedCodesMany} over this sketch's rows {@code ids[idsOff ..)}, which ascend. */
    public void dotSelectedMany(VectorKernels kernels, float[] x, int xOff, int xStride, int queries, int[] ids,
                                int idsOff, int count, float[][] out, int outOff) {
        dotSelectedMany(kernels, x, xOff, xStride, queries, ids, idsOff, count, out, null, outOff);
    }

    private void dotSelectedMany(VectorKernels kernels, float[] x, int xOff, int xStride, int queries, int[] ids,
                                 int idsOff, int count, float[][] outs, float[] out, int outOff) {
        int shared = count;
        if (baseCodes != null) {
            while (shared > 0 && ids[idsOff + shared - 1] >= baseRows) {
                shared--;
            }
        }
        byte[] first = baseCodes == null ? codes : baseCodes;
        float[] firstScales = baseCodes == null ? scales : baseScales;
        codes(kernels, x, xOff, xStride, queries, first, firstScales, ids, idsOff, shared, outs, out, outOff);
        int own = count - shared;
        if (own > 0) {
            int[] shifted = SUFFIX_IDS.get();
            if (shifted.length < own) {
                shifted = new int[Math.max(own, 2 * shifted.length)];
                SUFFIX_IDS.set(shifted);
            }
            for (int j = 0; j < own; j++) {
                shifted[j] = ids[idsOff + shared + j] - baseRows;
            }
            codes(kernels, x, xOff, xStride, queries, codes, scales, shifted, 0, own, outs, out, outOff + shared);
        }
    }

    private void codes(VectorKernels kernels, float[] x, int xOff, int xStride, int queries, byte[] rowCodes,
                       float[] rowScales, int[] ids, int idsOff, int count, float[][] outs, float[] out,
                       int outOff) {
        if (count == 0) {
            return;
        }
        if (outs == null) {
            kernels.dotSelectedCodes(x, xOff, rowCodes, dim, rowScales, ids, idsOff, count, out, outOff);
        } else {
            kernels.dotSelectedCodesMany(x, xOff, xStride, queries, rowCodes, dim, rowScales, ids, idsOff, count,
                    outs, outOff);
        }
    }

    /** Bytes of the coded rows this sketch holds: d + 4 per key (a fork's shared rows are its parent's). */
    public long bytes() {
        return (long) (rows - baseRows) * (dim + Float.BYTES);
    }
}
