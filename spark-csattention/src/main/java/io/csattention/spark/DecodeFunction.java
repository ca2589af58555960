package io.csattention.spark;

import io.csattention.core.BlockDecoder;
import io.csattention.core.BudgetPlan;
import org.apache.spark.sql.catalyst.CatalystTypeConverters;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.GenericInternalRow;
import org.apache.spark.sql.catalyst.util.ArrayData;
import org.apache.spark.sql.connector.catalog.functions.ScalarFunction;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.unsafe.types.UTF8String;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * SQL {@code csattention_decode(index_path, context_id, layer, head, query [, flags [, query_id]])}: the attention
 * output (array&lt;float&gt;) of the query vector of query head {@code head} against the KV head it reads (head / the
 * group size the index set recorded) of a committed index set, at the index's reference position.
 *
 * <ul>
 * <li>{@code flags}, a literal: {@code true} / {@code false} (with_selected, as before), or a string of
 *     comma-separated words: {@code selected} (a struct of {@code output} and {@code selected_ids}), {@code route}
 *     (a struct of {@code output}, [{@code selected_ids}] and {@code error}: a bad row gives its line in
 *     {@code error} and null output, a good row a null {@code error}), {@code fail} (a bad row fails the query, also
 *     where the session says route); {@code ''} is none of them.</li>
 * <li>{@code query_id}, any atomic column: named in a bad row's line ({@code (query_id=7)}), which is then the line
 *     the decode job gives for that row; without it the line names {@code (context_id=... layer=... head=...)}.</li>
 * <li>Session option {@code spark.csattention.onError=route} makes route the default (the result is then the
 *     route struct); other settings also come from the session's {@code spark.csattention.*} configuration when
 *     the query is planned.</li>
 * </ul>
 * A row is checked as the job checks it ({@link QueryCheck}: null ids, unknown context, layer or head, null query,
 * dimension, NaN or infinite values; a null index_path is a bad row too). In fail mode a bad row fails its task once,
 * not retried, and the query fails with the line. Heads load into the executor cache as in the decode job; the
 * counters are the job's ({@link CSAttentionMetrics}: queriesDecoded, queryErrors, indexesLoaded, cacheHits), one set
 * per bound function, shown in the Spark UI's stage pages.
 */
final class DecodeFunction implements ScalarFunction<Object> {

    static final String NAME = "csattention_decode";
    static final StructType WITH_SELECTED = new StructType()
            .add("output", DataTypes.createArrayType(DataTypes.FloatType, false), false)
            .add("selected_ids", DataTypes.createArrayType(DataTypes.IntegerType, false), false);

    /** What the sixth argument asks for. */
    record Flags(boolean withSelected, boolean route) implements java.io.Serializable {
    }

    private final CSAttentionOptions options;
    private final DataType flagsType;
    private final DataType queryIdType;
    private final Flags flags;
    private final HadoopConf conf;
    private final CSAttentionMetrics metrics;
    private transient Map<String, DecodePlan> plans;
    private transient Set<HeadKey> counted;

    /**
     * @param flagsType   the sixth argument's type (boolean or string), null without one
     * @param queryIdType the seventh argument's type, null without one
     */
    DecodeFunction(CSAttentionOptions options, DataType flagsType, DataType queryIdType, Flags flags, HadoopConf conf,
                   CSAttentionMetrics metrics) {
        this.options = options;
        this.flagsType = flagsType;
        this.queryIdType = queryIdType;
        this.flags = flags;
        this.conf = conf;
        this.metrics = metrics;
    }

    /**
     * The sixth argument's value ({@code null}: none given) with the session's onError: a boolean is with_selected,
     * a string the flags; an unknown word is one line.
     */
    static Flags flags(Object value, boolean sessionRoute) {
        if (value == null || value instanceof Boolean) {
            return new Flags(Boolean.TRUE.equals(value), sessionRoute);
        }
        boolean selected = false;
        Boolean route = null;
        for (String word : value.toString().split(",", -1)) {
            String w = word.trim().toLowerCase(java.util.Locale.ROOT);
            switch (w) {
                case "" -> { }
                case "selected" -> selected = true;
                case "route", "fail" -> {
                    if (route != null && route != w.equals("route")) {
                        throw new IllegalArgumentException(NAME + " flags must not hold both route and fail; flags='"
                                + value + "'");
                    }
                    route = w.equals("route");
                }
                default -> throw new IllegalArgumentException(NAME + " flags must be comma-separated words of "
                        + "selected, route, fail; flags='" + value + "'");
            }
        }
        return new Flags(selected, route == null ? sessionRoute : route);
    }

    @Override
    public DataType[] inputTypes() {
        DataType[] types = {DataTypes.StringType, DataTypes.StringType, DataTypes.IntegerType, DataTypes.IntegerType,
                DataTypes.createArrayType(DataTypes.FloatType), flagsType, queryIdType};
        return Arrays.copyOf(types, queryIdType != null ? 7 : flagsType != null ? 6 : 5);
    }

    @Override
    public DataType resultType() {
        if (flags.route()) {
            StructType out = new StructType().add("output", DataTypes.createArrayType(DataTypes.FloatType, false), true);
            if (flags.withSelected()) {
                out = out.add("selected_ids", DataTypes.createArrayType(DataTypes.IntegerType, false), true);
            }
            return out.add("error", DataTypes.StringType, true);
        }
        return flags.withSelected() ? WITH_SELECTED : DataTypes.createArrayType(DataTypes.FloatType, false);
    }

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public Object produceResult(InternalRow input) {
        String contextId = input.isNullAt(1) ? null : input.getUTF8String(1).toString();
        Integer layer = input.isNullAt(2) ? null : input.getInt(2);
        Integer head = input.isNullAt(3) ? null : input.getInt(3);
        String query = queryIdType != null
                ? QueryCheck.queryId(CatalystTypeConverters.convertToScala(input.get(6, queryIdType), queryIdType))
                : QueryCheck.row(contextId, layer, head);
        try {
            if (input.isNullAt(0)) {
                throw new BadQueryException("index_path must not be null (" + query + "); index_path=null");
            }
            String path = input.getUTF8String(0).toString();
            DecodePlan plan = plan(path);
            HeadKey key = QueryCheck.head(plan, contextId, layer, head, query);
            ArrayData values = input.isNullAt(4) ? null : input.getArray(4);
            float[] vector = QueryCheck.vector(values == null, () -> floats(values), plan.entries().get(key).dim(),
                    query);
            Object result = decode(plan, key, vector);
            metrics.queriesDecoded.add(1);
            return result;
        } catch (BadQueryException bad) {
            if (!flags.route()) {
                throw QueryCheck.notRetried(bad);
            }
            metrics.queryErrors.add(1);
            return new GenericInternalRow(flags.withSelected() ? new Object[] {null, null, UTF8String.fromString(
                    bad.getMessage())} : new Object[] {null, UTF8String.fromString(bad.getMessage())});
        }
    }

    /** The elements of an array&lt;float&gt;, a null element as NaN (as the decode job reads it). */
    private static float[] floats(ArrayData values) {
        float[] out = new float[values.numElements()];
        for (int i = 0; i < out.length; i++) {
            out[i] = values.isNullAt(i) ? Float.NaN : values.getFloat(i);
        }
        return out;
    }

    private Object decode(DecodePlan plan, HeadKey key, float[] query) {
        float[] out = new float[query.length];
        int[] selected;
        // held only while this row decodes: the cache may evict the head between rows, never during one
        try (ExecutorIndexCache.Lease lease = plan.borrow(key, firstUse(key) ? metrics : null)) {
            LoadedHead loaded = lease.head();
            BudgetPlan budget = options.settings().plan(loaded.cache.size());
            selected = BlockDecoder.decodeBlock(options.kernels(), loaded.cache, loaded.selector, budget, query, 0, 1,
                    null, out)[0];
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        ArrayData output = ArrayData.toArrayData(out);
        ArrayData ids = null;
        if (flags.withSelected()) {
            int n = 0;
            while (n < selected.length && selected[n] >= 0) {
                n++;
            }
            ids = ArrayData.toArrayData(Arrays.copyOf(selected, n));
        }
        if (flags.route()) {
            return new GenericInternalRow(flags.withSelected() ? new Object[] {output, ids, null}
                    : new Object[] {output, null});
        }
        return flags.withSelected() ? new GenericInternalRow(new Object[] {output, ids}) : output;
    }

    /**
     * Whether this is the first row of {@code key} in this function instance (one per task): the job counts a
     * cache hit or load once per task and head, and so does this.
     */
    private synchronized boolean firstUse(HeadKey key) {
        if (counted == null) {
            counted = new HashSet<>();
        }
        return counted.add(key);
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
