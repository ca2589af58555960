package io.csattention.format;

import io.csattention.core.CSAttentionIndex;
import io.csattention.core.Check;
import io.csattention.core.FloatMatrix;
import io.csattention.core.KeyValueCache;

/**
 * What one index file holds: the CSAttention index of one KV head of one layer of one context, with that head's
 * keys and values [N, d].
 */
public record IndexedHead(String contextId, int layer, int kvHead, CSAttentionIndex index, FloatMatrix keys,
                          FloatMatrix values) {

    public IndexedHead {
        java.util.Objects.requireNonNull(contextId, "contextId");
        Check.nonNegative(layer, "layer");
        Check.nonNegative(kvHead, "kv_head");
        Check.that(keys.rows() == index.keys() && keys.cols() == index.dim(),
                "keys must be [N, d] = [" + index.keys() + ", " + index.dim() + "]", "keys.shape",
                "[" + keys.rows() + ", " + keys.cols() + "]");
        Check.that(values.rows() == keys.rows() && values.cols() == keys.cols(),
                "values must have the keys' shape [" + keys.rows() + ", " + keys.cols() + "]", "values.shape",
                "[" + values.rows() + ", " + values.cols() + "]");
    }

    /** A fresh KV cache holding this head's keys and values (decode may append to it). */
    public KeyValueCache cache() {
        return KeyValueCache.of(keys, values);
    }

    /** Bytes of the index tables plus the keys and values, as held in memory. */
    public long bytes() {
        return index.bytes() + 8L * keys.rows() * keys.cols();
    }
}
