package io.csattention.spark;

import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The heads an executor JVM has loaded, least recently used evicted beyond a byte budget. A head is loaded once
 * even when several tasks ask for it at the same time; the most recently loaded head is never evicted, so a head
 * larger than the budget still decodes.
 */
final class ExecutorIndexCache {

    static final ExecutorIndexCache INSTANCE = new ExecutorIndexCache();
    private static final java.util.logging.Logger LOG = java.util.logging.Logger.getLogger(
            ExecutorIndexCache.class.getName());

    /** Loads a head that is not cached. */
    interface Loader {
        LoadedHead load() throws IOException;
    }

    private final LinkedHashMap<String, LoadedHead> heads = new LinkedHashMap<>(16, 0.75f, true);
    private final Map<String, Object> loading = new ConcurrentHashMap<>();
    private long bytes;

    LoadedHead get(String key, long budget, Loader loader, CSAttentionMetrics metrics) throws IOException {
        LoadedHead cached = cached(key);
        if (cached != null) {
            count(metrics, true);
            return cached;
        }
        synchronized (loading.computeIfAbsent(key, k -> new Object())) {
            cached = cached(key);
            if (cached != null) {
                count(metrics, true);
                return cached;
            }
            LoadedHead loaded = loader.load();
            count(metrics, false);
            synchronized (this) {
                heads.put(key, loaded);
                bytes += loaded.bytes();
                var it = heads.entrySet().iterator();
                while (bytes > budget && heads.size() > 1 && it.hasNext()) {
                    Map.Entry<String, LoadedHead> eldest = it.next();
                    if (eldest.getKey().equals(key)) {
                        continue;
                    }
                    bytes -= eldest.getValue().bytes();
                    it.remove();
                }
                LOG.info("loaded " + key + " (" + loaded.bytes() + " bytes); cache holds " + heads.size()
                        + " heads, " + bytes + " bytes of " + budget);
            }
            return loaded;
        }
    }

    /** Counts a hit or a load into the job's metrics; SQL functions run without metrics (null). */
    private static void count(CSAttentionMetrics metrics, boolean hit) {
        if (metrics != null) {
            (hit ? metrics.cacheHits : metrics.indexesLoaded).add(1);
        }
    }

    private synchronized LoadedHead cached(String key) {
        return heads.get(key);
    }

    synchronized long bytes() {
        return bytes;
    }

    synchronized void clear() {
        heads.clear();
        bytes = 0;
    }
}
