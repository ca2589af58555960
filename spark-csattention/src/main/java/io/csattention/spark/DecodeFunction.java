package io.csattention.spark;

import io.csattention.core.BlockDecoder;
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
 * SQL {@code csattention_decode(index_path, context_id, layer, head, query [, with_selected])}: the attention
 * output (array&lt;float&gt;) of the query vector of query head {@code head} against the KV head it reads (head / the
 * group size the index set recorded) of a committed index set, at the index's reference position, or with
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
        String contextId = input.getUTF8String(1).toString();
        int layer = input.getInt(2);
        int head = input.getInt(3);
        float[] query = input.getArray(4).toFloatArray();
        DecodePlan plan = plan(path);
        HeadKey key = new HeadKey(contextId, layer, plan.kvHead(contextId, layer, head));
        if (head < 0 || !plan.entries().containsKey(key)) {
            boolean knownContext = plan.entries().keySet().stream().anyMatch(k -> k.contextId().equals(contextId));
            throw new IllegalArgumentException(knownContext ? DecodePartition.unknownHead(plan, contextId, layer, head)
                    : "context_id must name a context of the index set " + path + "; context_id=" + contextId);
        }
        try {
            LoadedHead loaded = plan.load(key, null);
            if (query.length != loaded.cache.dim()) {
                throw new IllegalArgumentException("query must have head_dim=" + loaded.cache.dim() + " values ("
                        + key + "); query.length=" + query.length);
            }
            BudgetPlan budget = options.settings().plan(loaded.cache.size());
            float[] out = new float[query.length];
            int[] selected = BlockDecoder.decodeBlock(options.kernels(), loaded.cache, loaded.selector, budget, query,
                    0, 1, null, out)[0];
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
