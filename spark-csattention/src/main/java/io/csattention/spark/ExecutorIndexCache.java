package io.csattention.spark;

import java.io.IOException;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The heads an executor JVM has loaded, shared by its tasks, with a hard bound on their bytes: a task
 * {@linkplain #borrow borrows} a head and {@linkplain Lease#close releases} it; only heads nobody borrows are evicted
 * (least recently used first); a borrower whose head does not fit beside the borrowed ones waits until enough is
 * released. A head is loaded once even when several tasks ask for it at the same time.
 *
 * <p>The bytes counted are a head's resident decode form ({@link LoadedHead#bytes}); a head being loaded counts with
 * its {@linkplain #residentBytes estimate}, an upper bound of that, from the moment it is reserved, so the sum never
 * passes the budget. Not counted: the file's bytes while one is parsed (one file per loading task) and a broadcast
 * plan's files (at most {@code broadcastThreshold}).
 *
 * <p>No deadlock: a task holds at most one lease, and releases it before it borrows another, so a task that waits
 * holds nothing, and every borrowed head belongs to a task that is decoding and will release it (leases are also
 * released when a task ends, whatever its end). A head that alone needs more than the budget is refused.
 *
 * <p>An evicted head is closed, which frees its GPU decoders' device memory ({@link LoadedHead#gpuDecoder}); device
 * bytes are not counted against the budget, but a head has device memory only while it is cached here.
 */
final class ExecutorIndexCache {

    static final ExecutorIndexCache INSTANCE = new ExecutorIndexCache();
    private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(ExecutorIndexCache.class);

    /** Loads a head that is not cached. */
    interface Loader {
        LoadedHead load() throws IOException;
    }

    /** One head in the cache: reserved while it loads, then loaded. */
    private static final class Slot {
        final String key;
        final String name;
        long bytes;
        LoadedHead head;
        int borrowers;

        Slot(String key, String name, long bytes) {
            this.key = key;
            this.name = name;
            this.bytes = bytes;
        }
    }

    /** A borrowed head; closing releases it (once: a second close does nothing). */
    final class Lease implements AutoCloseable {
        private final Slot slot;
        private boolean released;

        private Lease(Slot slot) {
            this.slot = slot;
        }

        LoadedHead head() {
            return slot.head;
        }

        @Override
        public void close() {
            synchronized (ExecutorIndexCache.this) {
                if (released) {
                    return;
                }
                released = true;
                slot.borrowers--;
                ExecutorIndexCache.this.notifyAll();
            }
        }
    }

    /** In access order: the first unborrowed loaded slot is the least recently used one. */
    private final LinkedHashMap<String, Slot> slots = new LinkedHashMap<>(16, 0.75f, true);
    private long bytes;
    private long peakBytes;
    private long loads;
    private long borrows;

    /**
     * Borrows the head under {@code key} ({@code name} in messages), loading it when absent; waits while it does not
     * fit into {@code budget} beside the borrowed heads. {@code estimate} is an upper bound of its
     * {@link LoadedHead#bytes}. Counts a hit or a load into {@code metrics} (null: none).
     */
    Lease borrow(String key, String name, long estimate, long budget, Loader loader, CSAttentionMetrics metrics)
            throws IOException {
        Slot slot;
        synchronized (this) {
            while (true) {
                slot = slots.get(key);
                if (slot != null) {
                    if (slot.head != null) {
                        slot.borrowers++;
                        borrows++;
                        count(metrics, true);
                        return new Lease(slot);
                    }
                    await(name);
                    continue;
                }
                if (estimate > budget) {
                    throw new IllegalArgumentException(tooLarge(name, estimate, budget));
                }
                if (makeRoom(estimate, budget)) {
                    break;
                }
                await(name);
            }
            slot = new Slot(key, name, estimate);
            slot.borrowers = 1;
            borrows++;
            slots.put(key, slot);
            bytes += estimate;
            peakBytes = Math.max(peakBytes, bytes);
        }
        long start = System.nanoTime();
        LoadedHead loaded;
        try {
            loaded = loader.load();
        } catch (IOException | RuntimeException | Error e) {
            synchronized (this) {
                slots.remove(key);
                bytes -= slot.bytes;
                notifyAll();
            }
            throw e;
        }
        long millis = (System.nanoTime() - start) / 1_000_000;
        synchronized (this) {
            long actual = loaded.bytes();
            bytes += actual - slot.bytes;
            slot.bytes = actual;
            slot.head = loaded;
            loads++;
            if (bytes > budget) {
                makeRoom(0, budget);
            }
            peakBytes = Math.max(peakBytes, bytes);
            if (actual > estimate) {
                LOG.warn("index {} holds {} bytes, more than its estimate {}", name, actual, estimate);
            }
            LOG.info("loaded index {}: {} bytes in {} ms; cache holds {} heads, {} of {} bytes", name, actual,
                    millis, slots.size(), bytes, budget);
            notifyAll();
        }
        count(metrics, false);
        return new Lease(slot);
    }

    /** The refusal of a head that alone needs more than the budget. */
    static String tooLarge(String name, long need, long budget) {
        return "a head of " + name + " needs " + need + " bytes, more than cacheBudget=" + budget
                + "; raise cacheBudget";
    }

    /**
     * Evicts unborrowed loaded heads, least recently used first, until {@code need} more bytes fit into
     * {@code budget}; evicts nothing and answers false when even evicting all of them would not make room.
     */
    private boolean makeRoom(long need, long budget) {
        long free = budget - bytes;
        if (need <= free) {
            return true;
        }
        long evictable = 0;
        for (Slot s : slots.values()) {
            if (s.borrowers == 0 && s.head != null) {
                evictable += s.bytes;
            }
        }
        if (need > free + evictable) {
            return false;
        }
        Iterator<Map.Entry<String, Slot>> it = slots.entrySet().iterator();
        while (bytes + need > budget && it.hasNext()) {
            Slot s = it.next().getValue();
            if (s.borrowers == 0 && s.head != null) {
                it.remove();
                bytes -= s.bytes;
                s.head.close();
                LOG.debug("evicted index {} ({} bytes) to make room for {} bytes", s.name, s.bytes, need);
            }
        }
        return bytes + need <= budget;
    }

    private void await(String name) {
        try {
            wait();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for room in the index cache for " + name, e);
        }
    }

    /** Counts a hit or a load into the job's metrics; SQL functions run without metrics (null). */
    private static void count(CSAttentionMetrics metrics, boolean hit) {
        if (metrics != null) {
            if (hit) {
                metrics.cacheHits.add(1);
            } else {
                metrics.indexLoaded();
            }
        }
    }

    /**
     * An upper bound of the resident bytes ({@link LoadedHead#bytes}) of a head whose file has {@code fileBytes}
     * bytes: the file holds K and V as float32 and 8 bytes per list entry, the decode form the same K and V, 3 bytes
     * per list entry (and 4 per block of them), the tables, and with re-scoring the int8 sketch (d + 4 bytes per key).
     */
    static long residentBytes(long fileBytes, int keys, int dim, double rescoreFactor) {
        return fileBytes + (rescoreFactor > 0 ? (long) keys * (dim + Float.BYTES) : 0);
    }

    /** Resident bytes now: loaded heads and the reservations of heads being loaded. */
    synchronized long bytes() {
        return bytes;
    }

    /** The most {@link #bytes} ever were since this cache started or was last cleared. */
    synchronized long peakBytes() {
        return peakBytes;
    }

    /** Heads loaded since this cache started or was last cleared. */
    synchronized long loads() {
        return loads;
    }

    /** Leases handed out since this cache started or was last cleared. */
    synchronized long borrows() {
        return borrows;
    }

    /** Heads held (loaded or loading). */
    synchronized int size() {
        return slots.size();
    }

    /** Forgets every unborrowed head and the counters (tests start from an empty cache). */
    synchronized void clear() {
        slots.values().removeIf(s -> {
            boolean evict = s.borrowers == 0 && s.head != null;
            if (evict) {
                s.head.close();
            }
            return evict;
        });
        bytes = slots.values().stream().mapToLong(s -> s.bytes).sum();
        peakBytes = bytes;
        loads = 0;
        borrows = 0;
    }
}
