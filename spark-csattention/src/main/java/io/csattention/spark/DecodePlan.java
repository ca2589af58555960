package io.csattention.spark;

import io.csattention.format.IndexFileSummary;

import java.io.IOException;
import java.io.Serializable;
import java.util.Map;

/**
 * What the driver broadcasts to a decode job: for every head of the requested contexts its manifest entry and its
 * metadata and centroid tables (checked against each query before anything is loaded), and, when the requested
 * files total at most the broadcast threshold, the whole files. Executors without a whole file read it from the
 * index path into their {@link ExecutorIndexCache}.
 *
 * <p>The job's accumulators are not part of the plan: a broadcast value is deserialized once per executor, so an
 * accumulator inside it would be registered with only the first task there and the other tasks' counts lost. They
 * travel in each task's closure instead.
 */
record DecodePlan(String root, CSAttentionOptions options, HadoopConf conf, Map<HeadKey, IndexSet.Entry> entries,
                  Map<HeadKey, IndexFileSummary> summaries,
                  Map<HeadKey, byte[]> files, Map<LayerKey, Integer> groups) implements Serializable {

    private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(DecodePlan.class);

    /** One layer of one context: its heads share a GQA group size. */
    record LayerKey(String contextId, int layer) implements Serializable {
    }

    DecodePlan(String root, CSAttentionOptions options, HadoopConf conf, Map<HeadKey, IndexSet.Entry> entries,
               Map<HeadKey, IndexFileSummary> summaries, Map<HeadKey, byte[]> files) {
        this(root, options, conf, entries, summaries, files, groups(root, entries.values(),
                options.queryHeadsPerKvHead()));
    }

    /**
     * The group size of each layer: the one its heads recorded at build time; a decode-time {@code given} size
     * (0: none) must agree with it. Index sets written before the size was recorded use {@code given} (else 1), with
     * a warning.
     */
    static Map<LayerKey, Integer> groups(String root, java.util.Collection<IndexSet.Entry> entries, int given) {
        Map<LayerKey, Integer> groups = new java.util.HashMap<>();
        boolean unrecorded = false;
        for (IndexSet.Entry e : entries) {
            LayerKey layer = new LayerKey(e.contextId(), e.layer());
            int recorded = e.queryHeadsPerKvHead();
            if (recorded == 0) {
                unrecorded = true;
                recorded = given > 0 ? given : 1;
            } else if (given > 0 && given != recorded) {
                throw new IllegalArgumentException("queryHeadsPerKvHead must be the group size the index set "
                        + root + " recorded, " + recorded + " (context_id=" + e.contextId() + ", layer=" + e.layer()
                        + "); queryHeadsPerKvHead=" + given);
            }
            Integer before = groups.putIfAbsent(layer, recorded);
            if (before != null && before != recorded) {
                throw new IllegalStateException("index set " + root + " records two group sizes for context_id="
                        + e.contextId() + " layer=" + e.layer() + ": " + before + " and " + recorded);
            }
        }
        if (unrecorded) {
            LOG.warn("index set {} records no GQA group size (written by an older version); query head h reads KV "
                    + "head h / {}", root, given > 0 ? given : 1);
        }
        return Map.copyOf(groups);
    }

    /** The group size of a layer of a context (1 for a layer the index set does not hold). */
    int group(String contextId, int layer) {
        return groups.getOrDefault(new LayerKey(contextId, layer), 1);
    }

    /** The KV head that query head {@code head} of a layer reads. */
    int kvHead(String contextId, int layer, int head) {
        return Math.floorDiv(head, group(contextId, layer));
    }

    /**
     * The head, borrowed from this executor's cache (loaded into it when absent); counts into {@code metrics} when
     * given. The caller closes the lease before it borrows another head.
     */
    ExecutorIndexCache.Lease borrow(HeadKey key, CSAttentionMetrics metrics) throws IOException {
        IndexSet.Entry entry = entries.get(key);
        String cacheKey = root + "/" + entry.file() + "#" + entry.checksum() + "#" + options.kernelChoice() + "#"
                + options.settings().rescoreFactor();
        return ExecutorIndexCache.INSTANCE.borrow(cacheKey, key.toString(), residentBytes(key),
                options.cacheBudgetBytes(), () -> {
                    byte[] bytes = files != null && files.containsKey(key) ? files.get(key)
                            : IndexSet.readFile(conf, root, entry);
                    return new LoadedHead(IndexSet.parse(root, entry, bytes), options.kernels(),
                            options.settings().rescoreFactor());
                }, metrics);
    }

    /** The bytes the executor cache reserves for a head of this plan (an upper bound of what it holds). */
    long residentBytes(HeadKey key) {
        IndexSet.Entry entry = entries.get(key);
        return ExecutorIndexCache.residentBytes(entry.bytes(), entry.keys(), entry.dim(),
                options.settings().rescoreFactor());
    }
}
