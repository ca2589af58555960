package io.csattention.spark;

import org.apache.spark.SparkContext;
import org.apache.spark.util.LongAccumulator;

import java.io.Serializable;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The job counters, as named accumulators (visible in the Spark UI's stage pages). Only successful task attempts
 * count, so a retried task counts once.
 */
public final class CSAttentionMetrics implements Serializable {

    /** Contexts whose heads a build task indexed (a context is prefilled by one task). */
    public final LongAccumulator contextsPrefilled;
    /** Index files built (one per context, layer and KV head). */
    public final LongAccumulator headsBuilt;
    /** Heads an executor loaded into its cache, from the index path or the broadcast. */
    public final LongAccumulator indexesLoaded;
    /** Heads a task took from its executor's cache without loading (counted once per task and head). */
    public final LongAccumulator cacheHits;
    /** Query rows decoded. */
    public final LongAccumulator queriesDecoded;
    /** Query rows routed to the error column. */
    public final LongAccumulator queryErrors;
    /** Heads each executor loaded into its cache (executor id to loads). */
    final ExecutorCounters loadsByExecutor;
    /**
     * Per executor, the most bytes its index cache held at once (loaded heads and reservations of loading ones) since
     * the executor started, as its tasks saw it when they ended.
     */
    final ExecutorCounters cachePeakBytes;

    public CSAttentionMetrics(SparkContext sc) {
        contextsPrefilled = sc.longAccumulator("csattention.contextsPrefilled");
        headsBuilt = sc.longAccumulator("csattention.headsBuilt");
        indexesLoaded = sc.longAccumulator("csattention.indexesLoaded");
        cacheHits = sc.longAccumulator("csattention.cacheHits");
        queriesDecoded = sc.longAccumulator("csattention.queriesDecoded");
        queryErrors = sc.longAccumulator("csattention.queryErrors");
        loadsByExecutor = new ExecutorCounters(false);
        sc.register(loadsByExecutor, "csattention.loadsByExecutor");
        cachePeakBytes = new ExecutorCounters(true);
        sc.register(cachePeakBytes, "csattention.cachePeakBytes");
    }

    /** The counters by name, read on the driver after an action. */
    public Map<String, Long> values() {
        Map<String, Long> out = new LinkedHashMap<>();
        out.put("contextsPrefilled", contextsPrefilled.value());
        out.put("headsBuilt", headsBuilt.value());
        out.put("indexesLoaded", indexesLoaded.value());
        out.put("cacheHits", cacheHits.value());
        out.put("queriesDecoded", queriesDecoded.value());
        out.put("queryErrors", queryErrors.value());
        out.put("maxLoadsPerExecutor", loadsByExecutor.largest());
        out.put("cachePeakBytes", cachePeakBytes.largest());
        return out;
    }

    /** Heads each executor loaded (executor id to loads; "driver" in local mode). */
    public Map<String, Long> loadsByExecutor() {
        return loadsByExecutor.value();
    }

    /** One head loaded into this task's executor cache. */
    void indexLoaded() {
        indexesLoaded.add(1);
        loadsByExecutor.add(1L);
    }

    /** This task's executor's cache high-water mark, reported when the task ends. */
    void cachePeak(long bytes) {
        cachePeakBytes.add(bytes);
    }

    @Override
    public String toString() {
        return values().toString();
    }
}
