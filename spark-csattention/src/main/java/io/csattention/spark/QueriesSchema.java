package io.csattention.spark;

import org.apache.spark.sql.Row;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

import java.io.Serializable;

/**
 * The queries table of a decode, checked once on the driver:
 *
 * <pre>
 * query_id    any atomic type   copied to the output
 * context_id  string            a context of the index set
 * layer       int
 * head        int               query head; it reads KV head {@code head / queryHeadsPerKvHead}
 * query       array&lt;float&gt; or binary   the query vector [d]
 * position    int or bigint     optional: the query's RoPE position (>= 0); null or absent: the index's reference
 *                               position (the first position after the context)
 * </pre>
 *
 * Output: query_id, context_id, layer, head, kv_head, output (array&lt;float&gt; [d]), selected_ids (array&lt;int&gt;,
 * with option withSelected), decode_nanos (time of selection and attention for the row, not counting a
 * head's one-time load into the executor cache), error (with onError=route;
 * null on decoded rows).
 */
record QueriesSchema(int queryId, int contextId, int layer, int head, int query, TensorColumn queryType,
                     int position, StructType output) implements Serializable {

    static final String TABLE = "queries";
    static final String QUERY_ID = "query_id";
    static final String QUERY = "query";
    static final String POSITION = "position";

    static QueriesSchema of(StructType schema, CSAttentionOptions options) {
        int queryId = TensorColumn.index(schema, TABLE, QUERY_ID);
        DataType idType = schema.fields()[queryId].dataType();
        if (idType instanceof org.apache.spark.sql.types.ArrayType || idType instanceof StructType
                || idType instanceof org.apache.spark.sql.types.MapType) {
            throw new IllegalArgumentException("queries column query_id must be of an atomic type; query_id="
                    + idType.simpleString());
        }
        int contextId = TensorColumn.typed(schema, TABLE, ContextsSchema.CONTEXT_ID, DataTypes.StringType);
        int layer = TensorColumn.typed(schema, TABLE, ContextsSchema.LAYER, DataTypes.IntegerType);
        int head = TensorColumn.typed(schema, TABLE, "head", DataTypes.IntegerType);
        TensorColumn queryType = TensorColumn.of(schema, TABLE, QUERY, options.binaryFloat16(), false);
        int position = java.util.Arrays.stream(schema.fieldNames()).anyMatch(POSITION::equalsIgnoreCase)
                ? TensorColumn.typed(schema, TABLE, POSITION, DataTypes.IntegerType, DataTypes.LongType) : -1;
        StructType out = new StructType()
                .add(new StructField(QUERY_ID, idType, true, org.apache.spark.sql.types.Metadata.empty()))
                .add(ContextsSchema.CONTEXT_ID, DataTypes.StringType, true)
                .add(ContextsSchema.LAYER, DataTypes.IntegerType, true)
                .add("head", DataTypes.IntegerType, true)
                .add(ContextsSchema.KV_HEAD, DataTypes.IntegerType, true)
                .add("output", DataTypes.createArrayType(DataTypes.FloatType, false), true);
        if (options.withSelected()) {
            out = out.add("selected_ids", DataTypes.createArrayType(DataTypes.IntegerType, false), true);
        }
        out = out.add("decode_nanos", DataTypes.LongType, false);
        if (options.routeErrors()) {
            out = out.add("error", DataTypes.StringType, true);
        }
        return new QueriesSchema(queryId, contextId, layer, head, TensorColumn.index(schema, TABLE, QUERY), queryType,
                position, out);
    }

    /** The row's RoPE position, or -1 when it has none (the index's reference position is used). */
    long position(Row row) {
        if (position < 0 || row.isNullAt(position)) {
            return -1;
        }
        long value = ((Number) row.get(position)).longValue();
        if (value < 0) {
            throw new BadQueryException("position must be >= 0 (query_id=" + queryIdText(row)
                    + "); position=" + value);
        }
        return value;
    }

    String queryIdText(Row row) {
        return row.isNullAt(queryId) ? "null" : String.valueOf(row.get(queryId));
    }
}
