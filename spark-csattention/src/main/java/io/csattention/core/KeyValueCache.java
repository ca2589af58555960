package io.csattention.core;

/**
 * The keys and values of one attention head (or KV head), growable at the end: a context's keys from the prefill,
 * then one row per generated token. Key i sits at position i.
 */
public final class KeyValueCache {

    private final int dim;
    private float[] keys;
    private float[] values;
    private int size;

    public KeyValueCache(int dim, int capacity) {
        this.dim = Check.positive(dim, "dim");
        this.keys = new float[Math.max(1, capacity) * dim];
        this.values = new float[Math.max(1, capacity) * dim];
    }

    /** A cache that starts as a copy of the given keys and values. */
    public static KeyValueCache of(FloatMatrix keys, FloatMatrix values) {
        Check.that(keys.rows() == values.rows(), "keys and values must have the same rows; values.rows="
                + values.rows() + ", expected", "keys.rows", keys.rows());
        Check.that(keys.cols() == values.cols(), "keys and values must have the same dim; values.cols="
                + values.cols() + ", expected", "keys.cols", keys.cols());
        KeyValueCache cache = new KeyValueCache(keys.cols(), keys.rows() + 64);
        System.arraycopy(keys.data(), 0, cache.keys, 0, keys.rows() * keys.cols());
        System.arraycopy(values.data(), 0, cache.values, 0, values.rows() * values.cols());
        cache.size = keys.rows();
        return cache;
    }

    /** Appends one key/value row and returns its index. */
    public int append(float[] key, int keyOff, float[] value, int valueOff) {
        if ((size + 1) * dim > keys.length) {
            int capacity = Math.max(size + 1, size + (size >> 1));
            keys = java.util.Arrays.copyOf(keys, capacity * dim);
            values = java.util.Arrays.copyOf(values, capacity * dim);
        }
        System.arraycopy(key, keyOff, keys, size * dim, dim);
        System.arraycopy(value, valueOff, values, size * dim, dim);
        return size++;
    }

    public int size() {
        return size;
    }

    public int dim() {
        return dim;
    }

    /** The backing key array (row-major, valid for rows [0, size)); shared, not copied. */
    public float[] keys() {
        return keys;
    }

    /** The backing value array (row-major, valid for rows [0, size)); shared, not copied. */
    public float[] values() {
        return values;
    }

    public FloatMatrix keyMatrix() {
        return new FloatMatrix(size, dim, java.util.Arrays.copyOf(keys, size * dim));
    }

    public FloatMatrix valueMatrix() {
        return new FloatMatrix(size, dim, java.util.Arrays.copyOf(values, size * dim));
    }
}
