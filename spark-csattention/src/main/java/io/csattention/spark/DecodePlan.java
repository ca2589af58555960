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
                  Map<HeadKey, byte[]> files) implements Serializable {

    /** The head, loaded into this executor's cache once; counts into {@code metrics} when given. */
    LoadedHead load(HeadKey key, CSAttentionMetrics metrics) throws IOException {
        IndexSet.Entry entry = entries.get(key);
        String cacheKey = root + "/" + entry.file() + "#" + entry.checksum() + "#" + options.backend() + "#"
                + options.settings().rescoreFactor();
        return ExecutorIndexCache.INSTANCE.get(cacheKey, options.cacheBudgetBytes(), () -> {
            byte[] bytes = files != null && files.containsKey(key) ? files.get(key)
                    : IndexSet.readFile(conf, root, entry);
            return new LoadedHead(IndexSet.parse(root, entry, bytes), options.kernels(),
                    options.settings().rescoreFactor());
        }, metrics);
    }
}
