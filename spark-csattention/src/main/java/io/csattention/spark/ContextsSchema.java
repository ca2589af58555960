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
 * query_heads_per_kv_head  int     optional: the head's GQA group size (else option queryHeadsPerKvHead, else 1)
 * prefill_positions array&lt;int|bigint&gt;  optional: the RoPE position of each prefill query row of the chunk (else,
 *                           with RoPE, prefill rows are taken as token-major: row r of the head at r / (rows / N))
 * rope_base        double   optional: the RoPE base of the head (else option ropeBase; absent or 0: no RoPE)
 * rope_style       string   optional: interleaved or half (else option ropeStyle)
 * rope_frequencies array&lt;float&gt;  optional: the model's own per-pair frequencies (scaled RoPE)
 * </pre>
 * The optional columns are read from a head's first row.
 */
record ContextsSchema(int contextId, int layer, int kvHead, int keys, int values, int prefill, int headDim, int chunk,
                      TensorColumn keysType, TensorColumn valuesType, TensorColumn prefillType, int group,
                      int prefillPositions, int ropeBase, int ropeStyle, int ropeFrequencies,
                      org.apache.spark.sql.types.DataType prefillPositionsType,
                      org.apache.spark.sql.types.DataType ropeBaseType)
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
    static final String QUERY_HEADS_PER_KV_HEAD = "query_heads_per_kv_head";
    static final String PREFILL_POSITIONS = "prefill_positions";
    static final String ROPE_BASE = "rope_base";
    static final String ROPE_STYLE = "rope_style";
    static final String ROPE_FREQUENCIES = "rope_frequencies";

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
        int chunk = optional(schema, CHUNK, DataTypes.IntegerType);
        int group = optional(schema, QUERY_HEADS_PER_KV_HEAD, DataTypes.IntegerType);
        int positions = optional(schema, PREFILL_POSITIONS, DataTypes.createArrayType(DataTypes.IntegerType, true),
                DataTypes.createArrayType(DataTypes.IntegerType, false),
                DataTypes.createArrayType(DataTypes.LongType, true), DataTypes.createArrayType(DataTypes.LongType, false));
        int ropeBase = optional(schema, ROPE_BASE, DataTypes.DoubleType, DataTypes.FloatType);
        int ropeStyle = optional(schema, ROPE_STYLE, DataTypes.StringType);
        int ropeFrequencies = optional(schema, ROPE_FREQUENCIES,
                DataTypes.createArrayType(DataTypes.FloatType, true), DataTypes.createArrayType(DataTypes.FloatType, false));
        return new ContextsSchema(contextId, layer, kvHead, TensorColumn.index(schema, TABLE, KEYS),
                TensorColumn.index(schema, TABLE, VALUES), TensorColumn.index(schema, TABLE, PREFILL_QUERIES), headDim,
                chunk, keys, values, prefill, group, positions, ropeBase, ropeStyle, ropeFrequencies,
                positions < 0 ? null : schema.fields()[positions].dataType(),
                ropeBase < 0 ? null : schema.fields()[ropeBase].dataType());
    }

    /** The ordinal of an optional column of one of {@code types}, or -1 when the table has none. */
    private static int optional(StructType schema, String name, org.apache.spark.sql.types.DataType... types) {
        return java.util.Arrays.stream(schema.fieldNames()).anyMatch(name::equalsIgnoreCase)
                ? TensorColumn.typed(schema, TABLE, name, types) : -1;
    }

    /** The head a row belongs to; a null id is a one-line error naming what the row has. */
    HeadKey key(InternalRow row) {
        if (row.isNullAt(contextId) || row.isNullAt(layer) || row.isNullAt(kvHead)) {
            throw new IllegalArgumentException("context_id, layer and kv_head must not be null; context_id="
                    + (row.isNullAt(contextId) ? "null" : row.getUTF8String(contextId)) + ", layer="
                    + (row.isNullAt(layer) ? "null" : row.getInt(layer)) + ", kv_head="
                    + (row.isNullAt(kvHead) ? "null" : row.getInt(kvHead)));
        }
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
