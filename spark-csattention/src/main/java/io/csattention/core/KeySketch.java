package io.csattention.core;

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
    private byte[] codes;
    private float[] scales;
    private int rows;

    private KeySketch(int dim, int capacity) {
        this.dim = dim;
        this.codes = new byte[Math.multiplyExact(capacity, dim)];
        this.scales = new float[capacity];
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
        if (target > scales.length) {
            int capacity = Math.max(target, 2 * scales.length);
            codes = java.util.Arrays.copyOf(codes, Math.multiplyExact(capacity, dim));
            scales = java.util.Arrays.copyOf(scales, capacity);
        }
        float[] row = new float[dim];
        for (int r = rows; r < target; r++) {
            cache.keyRows(io.csattention.kernel.Kernels.preferred(), r, 1, row, 0);
            code(row, 0, r);
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

    /** Row-major codes [capacity, d]; rows past {@link #rows()} are unused. */
    public byte[] codes() {
        return codes;
    }

    /** One scale per row. */
    public float[] scales() {
        return scales;
    }

    /** Bytes of the coded rows: d + 4 per key. */
    public long bytes() {
        return (long) rows * (dim + Float.BYTES);
    }
}
