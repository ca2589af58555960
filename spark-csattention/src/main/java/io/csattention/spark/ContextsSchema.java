package io.csattention.spark;

import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

import java.io.Serializable;

/**
 * The tensor-level contexts table, checked once on the driver. One or more rows per context, layer and KV head:
 *
 * <pre>
 * context_id       string   the reusable context
 * layer            int      transformer layer
 * kv_head          int      KV head of that layer
 * keys, values     tensor   rows [n, d] of this chunk (see {@link TensorColumn} for the accepted types)
 * prefill_queries  tensor   prefill query rows [n_p, d] of every query head sharing the KV head (may be null in
 *                           some chunks)
 * head_dim         int      d; required when a tensor column is flattened (array&lt;float&gt; or binary)
 * chunk            int      optional: order of the chunks of one head (token ranges); rows without it form one chunk
 * </pre>
 */
record ContextsSchema(int contextId, int layer, int kvHead, int keys, int values, int prefill, int headDim, int chunk,
                      TensorColumn keysType, TensorColumn valuesType, TensorColumn prefillType)
        implements Serializable {

    static final String TABLE = "contexts";
    static final String CONTEXT_ID = "context_id";
    static final String LAYER = "layer";
    static final String KV_HEAD = "kv_head";
    static final String KEYS = "keys";
    static final String VALUES = "values";
    static final String PREFILL_QUERIES = "prefill_queries";
    static final String HEAD_DIM = "head_dim";
    static final String CHUNK = "chunk";

    static ContextsSchema of(StructType schema, boolean float16) {
        int contextId = TensorColumn.typed(schema, TABLE, CONTEXT_ID, DataTypes.StringType);
        int layer = TensorColumn.typed(schema, TABLE, LAYER, DataTypes.IntegerType);
        int kvHead = TensorColumn.typed(schema, TABLE, KV_HEAD, DataTypes.IntegerType);
        TensorColumn keys = TensorColumn.of(schema, TABLE, KEYS, float16, true);
        TensorColumn values = TensorColumn.of(schema, TABLE, VALUES, float16, true);
        TensorColumn prefill = TensorColumn.of(schema, TABLE, PREFILL_QUERIES, float16, true);
        boolean flattened = keys != TensorColumn.ROWS || values != TensorColumn.ROWS || prefill != TensorColumn.ROWS;
        int headDim = -1;
        if (flattened) {
            headDim = TensorColumn.typed(schema, TABLE, HEAD_DIM, DataTypes.IntegerType);
        } else if (java.util.Arrays.stream(schema.fieldNames()).anyMatch(HEAD_DIM::equalsIgnoreCase)) {
            headDim = TensorColumn.typed(schema, TABLE, HEAD_DIM, DataTypes.IntegerType);
        }
        int chunk = java.util.Arrays.stream(schema.fieldNames()).anyMatch(CHUNK::equalsIgnoreCase)
                ? TensorColumn.typed(schema, TABLE, CHUNK, DataTypes.IntegerType) : -1;
        return new ContextsSchema(contextId, layer, kvHead, TensorColumn.index(schema, TABLE, KEYS),
                TensorColumn.index(schema, TABLE, VALUES), TensorColumn.index(schema, TABLE, PREFILL_QUERIES), headDim,
                chunk, keys, values, prefill);
    }

    HeadKey key(InternalRow row) {
        return new HeadKey(row.getUTF8String(contextId).toString(), row.getInt(layer), row.getInt(kvHead));
    }

    /** d of a row: its head_dim, or the length of the first inner row of a nested tensor. */
    int dim(InternalRow row, HeadKey key) {
        if (headDim >= 0 && !row.isNullAt(headDim)) {
            int d = row.getInt(headDim);
            if (d <= 0) {
                throw new IllegalArgumentException("head_dim must be > 0 (" + key + "); head_dim=" + d);
            }
            return d;
        }
        if (row.getArray(keys).numElements() == 0) {
            throw new IllegalArgumentException("keys must hold at least one row (" + key + "); keys=[]");
        }
        return row.getArray(keys).getArray(0).numElements();
    }
}
