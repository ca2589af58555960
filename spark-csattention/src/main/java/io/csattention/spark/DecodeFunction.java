package io.csattention.spark;

import io.csattention.core.Attention;
import io.csattention.core.BudgetPlan;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.GenericInternalRow;
import org.apache.spark.sql.catalyst.util.ArrayData;
import org.apache.spark.sql.connector.catalog.functions.ScalarFunction;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * SQL {@code csattention_decode(index_path, context_id, layer, kv_head, query [, with_selected])}: the attention
 * output (array&lt;float&gt;) of a query vector against one head of a committed index set, or with
 * {@code with_selected = true} a struct of {@code output} and {@code selected_ids}. Settings come from the session's
 * {@code spark.csattention.*} configuration when the query is planned. Heads load into the executor cache as in
 * the decode job.
 */
final class DecodeFunction implements ScalarFunction<Object> {

    static final String NAME = "csattention_decode";
    static final StructType WITH_SELECTED = new StructType()
            .add("output", DataTypes.createArrayType(DataTypes.FloatType, false), false)
            .add("selected_ids", DataTypes.createArrayType(DataTypes.IntegerType, false), false);

    private final CSAttentionOptions options;
    private final int arity;
    private final boolean withSelected;
    private final HadoopConf conf;
    private transient Map<String, DecodePlan> plans;

    DecodeFunction(CSAttentionOptions options, int arity, boolean withSelected, HadoopConf conf) {
        this.options = options;
        this.arity = arity;
        this.conf = conf;
        this.withSelected = withSelected;
    }

    @Override
    public DataType[] inputTypes() {
        DataType[] base = {DataTypes.StringType, DataTypes.StringType, DataTypes.IntegerType, DataTypes.IntegerType,
                DataTypes.createArrayType(DataTypes.FloatType)};
        if (arity == base.length) {
            return base;
        }
        DataType[] with = java.util.Arrays.copyOf(base, 6);
        with[5] = DataTypes.BooleanType;
        return with;
    }

    @Override
    public DataType resultType() {
        return withSelected ? WITH_SELECTED : DataTypes.createArrayType(DataTypes.FloatType, false);
    }

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public Object produceResult(InternalRow input) {
        for (int i = 0; i < 5; i++) {
            if (input.isNullAt(i)) {
                return null;
            }
        }
        String path = input.getUTF8String(0).toString();
        HeadKey key = new HeadKey(input.getUTF8String(1).toString(), input.getInt(2), input.getInt(3));
        float[] query = input.getArray(4).toFloatArray();
        DecodePlan plan = plan(path);
        if (!plan.entries().containsKey(key)) {
            throw new IllegalArgumentException("context_id, layer and kv_head must name a head of the index set "
                    + path + "; " + key);
        }
        try {
            LoadedHead loaded = plan.load(key, null);
            if (query.length != loaded.cache.dim()) {
                throw new IllegalArgumentException("query must have head_dim=" + loaded.cache.dim() + " values ("
                        + key + "); query.length=" + query.length);
            }
            BudgetPlan budget = options.settings().plan(loaded.cache.size());
            int[] selected = loaded.selector.select(query, 0, budget);
            float[] out = new float[query.length];
            Attention.attend(options.kernels(), query, 0, loaded.cache, selected, out, 0);
            ArrayData output = ArrayData.toArrayData(out);
            if (!withSelected) {
                return output;
            }
            int n = 0;
            while (n < selected.length && selected[n] >= 0) {
                n++;
            }
            return new GenericInternalRow(new Object[] {output,
                    ArrayData.toArrayData(java.util.Arrays.copyOf(selected, n))});
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The manifest of {@code path}, read once per function instance (one query plan) on each executor. */
    private synchronized DecodePlan plan(String path) {
        if (plans == null) {
            plans = new ConcurrentHashMap<>();
        }
        return plans.computeIfAbsent(path, p -> {
            try {
                Map<HeadKey, IndexSet.Entry> entries = new java.util.HashMap<>();
                for (IndexSet.Entry e : IndexSet.require(conf, p).heads()) {
                    entries.put(e.key(), e);
                }
                return new DecodePlan(p, options, conf, entries, Map.of(), null);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        });
    }
}
