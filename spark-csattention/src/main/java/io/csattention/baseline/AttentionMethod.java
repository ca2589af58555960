package io.csattention.baseline;

import io.csattention.core.CSAttentionIndex;
import io.csattention.core.CSAttentionSelector;
import io.csattention.core.CSAttentionSettings;
import io.csattention.core.FloatMatrix;
import io.csattention.core.KeySelector;
import io.csattention.core.KeyValueCache;
import io.csattention.core.RopeInfo;
import io.csattention.kernel.VectorKernels;

import java.util.Arrays;
import java.util.Locale;

/** The attention methods that run on the same engine, budget and sink/window convention. */
public enum AttentionMethod {
    FULL,
    ORACLE,
    QUEST,
    KEYCLUSTER,
    CSATTENTION,
    /**
     * csattention with one selection per KV head for all the query heads of its group (grouped-query models):
     * {@link CSAttentionSelector#selectShared}. The same index; with one query head per KV head it is csattention.
     */
    CSATTENTION_GROUP;

    /** Whether the method decodes with a csattention index (its selectors are {@link CSAttentionSelector}s). */
    public boolean usesIndex() {
        return this == CSATTENTION || this == CSATTENTION_GROUP;
    }

    /** The name used on command lines and in reports. */
    public String id() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** The method of a command-line name, or an error that lists the known names. */
    public static AttentionMethod parse(String name) {
        for (AttentionMethod method : values()) {
            if (method.id().equalsIgnoreCase(name.trim())) {
                return method;
            }
        }
        throw new IllegalArgumentException("unknown method '" + name + "'; expected one of "
                + String.join(",", Arrays.stream(values()).map(AttentionMethod::id).toList()));
    }

    /**
     * A selector of this method over {@code cache}; {@code prefillQueries} are the prefill queries of every query
     * head that shares the cache (used by csattention only).
     */
    public KeySelector newSelector(VectorKernels kernels, KeyValueCache cache, FloatMatrix prefillQueries,
                                   CSAttentionSettings settings) {
        return newSelector(kernels, cache, prefillQueries, settings, null);
    }

    /** The same, with the head's RoPE information for csattention's band treatment ({@code null}: none). */
    public KeySelector newSelector(VectorKernels kernels, KeyValueCache cache, FloatMatrix prefillQueries,
                                   CSAttentionSettings settings, RopeInfo rope) {
        return switch (this) {
            case FULL -> new FullSelector();
            case ORACLE -> new OracleSelector(kernels, cache);
            case QUEST -> new QuestSelector(kernels, cache, QuestSelector.DEFAULT_PAGE_SIZE);
            case KEYCLUSTER -> new KeyClusterSelector(kernels, cache, 0, settings.kmeansIterations(), settings.seed());
            case CSATTENTION, CSATTENTION_GROUP -> new CSAttentionSelector(kernels,
                    CSAttentionIndex.build(kernels, keysNow(cache), prefillQueries, settings, rope), cache,
                    settings.rescoreFactor());
        };
    }

    /** The cache's keys as they are now, without a copy: the build only reads them. */
    private static FloatMatrix keysNow(KeyValueCache cache) {
        return cache.precision() == KeyValueCache.Precision.F32
                ? new FloatMatrix(cache.size(), cache.dim(), cache.keys()) : cache.keyMatrix();
    }

    /** The plan a query of this method follows over {@code keys} keys: every key for {@code full}. */
    public io.csattention.core.BudgetPlan plan(CSAttentionSettings settings, int keys) {
        return this == FULL ? io.csattention.core.BudgetPlan.all(keys) : settings.plan(keys);
    }
}
