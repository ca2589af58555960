package io.csattention.spark;

import io.csattention.core.CSAttentionIndex;
import io.csattention.core.CSAttentionSettings;
import io.csattention.core.IndexBuilder;
import io.csattention.core.IndexShape;
import io.csattention.format.IndexFile;
import io.csattention.format.IndexedHead;
import io.csattention.kernel.ScalarKernels;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The executor cache on its own: borrowed heads are never evicted and the bytes it holds never pass the budget (a
 * borrower that does not fit waits), unborrowed heads go least recently used first, concurrent borrowers of one
 * head share one load, a head larger than the budget is refused in one line, and the reservation made before a load
 * bounds what the loaded head holds.
 */
class ExecutorIndexCacheTest {

    private static final int HEADS = 6;
    private static final List<LoadedHead> LOADED = new ArrayList<>();
    private static final List<Long> FILE_BYTES = new ArrayList<>();

    @BeforeAll
    static void heads() {
        TestTensors data = new TestTensors(1, 1, HEADS, 1024, 32, 5L);
        CSAttentionSettings settings = CSAttentionSettings.defaults().withCentroids(16);
        for (int h = 0; h < HEADS; h++) {
            CSAttentionIndex index = IndexBuilder.build(ScalarKernels.INSTANCE, data.keys(0, 0, h),
                    data.prefill(0, 0, h), settings, null);
            IndexShape s = index.shape();
            LOADED.add(new LoadedHead(new IndexedHead("ctx-0", 0, h, index, data.keys(0, 0, h),
                    data.values(0, 0, h)), ScalarKernels.INSTANCE, settings.rescoreFactor()));
            FILE_BYTES.add(IndexFile.fileBytes(IndexFile.VERSION_CURRENT, "ctx-0", s.keys(), s.dim(), s.subspaces(),
                    s.centroidCount(), s.listLength(), null));
        }
    }

    private static long size(int h) {
        return LOADED.get(h).bytes();
    }

    private static ExecutorIndexCache.Lease borrow(ExecutorIndexCache cache, int h, long budget, AtomicInteger loads)
            throws IOException {
        return cache.borrow("head-" + h, "context_id=ctx-0 layer=0 kv_head=" + h, size(h), budget, () -> {
            loads.incrementAndGet();
            return LOADED.get(h);
        }, null);
    }

    @Test
    void theReservationBoundsWhatALoadedHeadHolds() {
        for (int h = 0; h < HEADS; h++) {
            long estimate = ExecutorIndexCache.residentBytes(FILE_BYTES.get(h), 1024, 32, 5.0);
            assertTrue(size(h) <= estimate, "head " + h + " holds " + size(h) + " bytes, estimate " + estimate);
            assertTrue(size(h) > estimate * 0.8, "the estimate stays close: " + size(h) + " of " + estimate);
        }
    }

    @Test
    void unborrowedHeadsAreEvictedLeastRecentlyUsedFirst() throws IOException {
        ExecutorIndexCache cache = new ExecutorIndexCache();
        long budget = size(0) + size(1) + size(2) / 2;
        AtomicInteger loads = new AtomicInteger();
        borrow(cache, 0, budget, loads).close();
        borrow(cache, 1, budget, loads).close();
        borrow(cache, 0, budget, loads).close();
        assertEquals(2, loads.get(), "head 0 came from the cache the second time");
        borrow(cache, 2, budget, loads).close();
        assertEquals(2, cache.size(), "head 1, the least recently used, made room for head 2");
        borrow(cache, 0, budget, loads).close();
        assertEquals(3, loads.get(), "head 0 stayed");
        borrow(cache, 1, budget, loads).close();
        assertEquals(4, loads.get(), "head 1 was evicted");
        assertTrue(cache.peakBytes() <= budget, "peak " + cache.peakBytes() + " of " + budget);
        assertEquals(4, cache.loads());
    }

    @Test
    void aBorrowedHeadStaysAndABorrowerThatDoesNotFitWaitsForItsRelease() throws Exception {
        ExecutorIndexCache cache = new ExecutorIndexCache();
        long budget = Math.max(size(0), size(1)) + size(2) / 2;
        AtomicInteger loads = new AtomicInteger();
        ExecutorIndexCache.Lease first = borrow(cache, 0, budget, loads);
        CountDownLatch started = new CountDownLatch(1);
        ExecutorService pool = Executors.newSingleThreadExecutor();
        try {
            Future<LoadedHead> second = pool.submit(() -> {
                started.countDown();
                try (ExecutorIndexCache.Lease lease = borrow(cache, 1, budget, loads)) {
                    return lease.head();
                }
            });
            started.await();
            while (Thread.State.WAITING != waitingState(pool)) {
                Thread.onSpinWait();
            }
            assertFalse(second.isDone(), "head 1 does not fit beside borrowed head 0");
            assertSame(LOADED.get(0), first.head());
            assertEquals(1, loads.get());
            first.close();
            first.close();
            assertSame(LOADED.get(1), second.get(30, TimeUnit.SECONDS));
            assertEquals(2, loads.get());
            assertEquals(1, cache.size(), "head 0 made room once released");
            assertTrue(cache.peakBytes() <= budget, "peak " + cache.peakBytes() + " of " + budget);
        } finally {
            pool.shutdownNow();
        }
    }

    /** The state of the pool's one thread (the borrower), found by its name. */
    private static Thread.State waitingState(ExecutorService pool) {
        for (Thread t : Thread.getAllStackTraces().keySet()) {
            for (StackTraceElement e : t.getStackTrace()) {
                if (e.getClassName().equals(ExecutorIndexCache.class.getName()) && e.getMethodName().equals("await")) {
                    return t.getState();
                }
            }
        }
        return Thread.State.RUNNABLE;
    }

    @Test
    void concurrentBorrowersNeverPassTheBudgetAndShareLoads() throws Exception {
        ExecutorIndexCache cache = new ExecutorIndexCache();
        long largest = 0;
        for (int h = 0; h < HEADS; h++) {
            largest = Math.max(largest, size(h));
        }
        long budget = 2 * largest + largest / 3;
        AtomicInteger loads = new AtomicInteger();
        AtomicLong over = new AtomicLong();
        int threads = 8;
        long seed = 91L;
        System.out.println("ExecutorIndexCacheTest seed=" + seed);
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try {
            List<Future<Integer>> done = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                SplittableRandom random = new SplittableRandom(seed + t);
                done.add(pool.submit(() -> {
                    int borrowed = 0;
                    for (int i = 0; i < 400; i++) {
                        int h = random.nextInt(HEADS);
                        try (ExecutorIndexCache.Lease lease = borrow(cache, h, budget, loads)) {
                            assertSame(LOADED.get(h), lease.head());
                            if (cache.bytes() > budget) {
                                over.incrementAndGet();
                            }
                            borrowed++;
                        }
                    }
                    return borrowed;
                }));
            }
            for (Future<Integer> f : done) {
                assertEquals(400, f.get(60, TimeUnit.SECONDS));
            }
        } finally {
            pool.shutdownNow();
        }
        assertEquals(0, over.get());
        assertTrue(cache.peakBytes() <= budget, "peak " + cache.peakBytes() + " of " + budget);
        assertTrue(loads.get() > HEADS, "a budget of about two heads reloads; loads=" + loads.get());
        assertEquals(loads.get(), cache.loads());
    }

    @Test
    void borrowersOfOneHeadAtOnceShareOneLoad() throws Exception {
        ExecutorIndexCache cache = new ExecutorIndexCache();
        CountDownLatch release = new CountDownLatch(1);
        AtomicInteger loads = new AtomicInteger();
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            List<Future<LoadedHead>> done = new ArrayList<>();
            for (int t = 0; t < 4; t++) {
                done.add(pool.submit(() -> {
                    try (ExecutorIndexCache.Lease lease = cache.borrow("head-3", "head 3", size(3), 1L << 30, () -> {
                        loads.incrementAndGet();
                        try {
                            release.await();
                        } catch (InterruptedException e) {
                            throw new IOException(e);
                        }
                        return LOADED.get(3);
                    }, null)) {
                        return lease.head();
                    }
                }));
            }
            release.countDown();
            for (Future<LoadedHead> f : done) {
                assertSame(LOADED.get(3), f.get(30, TimeUnit.SECONDS));
            }
        } finally {
            pool.shutdownNow();
        }
        assertEquals(1, loads.get());
    }

    @Test
    void aFailedLoadGivesItsReservationBack() {
        ExecutorIndexCache cache = new ExecutorIndexCache();
        IOException e = assertThrows(IOException.class, () -> cache.borrow("head-4", "head 4", size(4), 1L << 30,
                () -> {
                    throw new IOException("index file gone");
                }, null));
        assertEquals("index file gone", e.getMessage());
        assertEquals(0, cache.bytes());
        assertEquals(0, cache.size());
    }

    @Test
    void aHeadLargerThanTheBudgetIsRefused() {
        ExecutorIndexCache cache = new ExecutorIndexCache();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> cache.borrow("head-0",
                "context_id=ctx-0 layer=0 kv_head=0", 5000, 4096, () -> LOADED.get(0), null));
        assertEquals("a head of context_id=ctx-0 layer=0 kv_head=0 needs 5000 bytes, more than cacheBudget=4096; "
                + "raise cacheBudget", e.getMessage());
        assertEquals(0, cache.size());
    }
}
