package io.csattention.core;

import io.csattention.kernel.VectorKernels;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Forks of a 32K-key half cache and of its key sketch share the context's rows instead of copying them: every read
 * of a fork (rows, gathers, products, the sketch's re-scoring) gives the bits of a cache built whole from the same
 * rows in one array, across the boundary between the shared rows and the fork's own, through forks of forks, after
 * the context and its other forks went on appending, and after the fork's own arrays grew.
 */
class KeyValueCacheForkTest {

    /** Keys of the context: a long one, where forks pay for copying it. */
    private static final int N = 32_768;
    private static final int D = 64;

    private static List<VectorKernels> kernels() {
        return KeyValueCacheTest.kernels();
    }

    /** A whole cache (no sharing) of the context's rows and then {@code extra}'s first {@code rows} rows. */
    private static KeyValueCache whole(FloatMatrix keys, FloatMatrix values, FloatMatrix extraKeys,
                                       FloatMatrix extraValues, int from, int rows, KeyValueCache.Precision p) {
        KeyValueCache cache = KeyValueCache.of(keys, values, p);
        append(cache, extraKeys, extraValues, from, rows);
        return cache;
    }

    private static void append(KeyValueCache cache, FloatMatrix keys, FloatMatrix values, int from, int rows) {
        for (int r = from; r < from + rows; r++) {
            cache.append(keys.data(), r * D, values.data(), r * D);
        }
    }

    @Test
    void forksReadWhatAWholeCacheReadsAndHoldOnlyTheirOwnRows() {
        FloatMatrix keys = TestData.gaussian(N, D, 81);
        FloatMatrix values = TestData.gaussian(N, D, 82);
        FloatMatrix moreKeys = TestData.gaussian(400, D, 83);
        FloatMatrix moreValues = TestData.gaussian(400, D, 84);
        for (KeyValueCache.Precision p : new KeyValueCache.Precision[] {KeyValueCache.Precision.F16,
                KeyValueCache.Precision.BF16}) {
            KeyValueCache context = KeyValueCache.of(keys, values, p);
            KeyValueCache a = context.fork();
            KeyValueCache b = context.fork();
            assertEquals(N, a.sharedRows());
            assertEquals(2L * 64 * D * 2, a.allocatedBytes(), "a fresh fork holds room for 64 rows, not the context");
            append(a, moreKeys, moreValues, 0, 150);           // grows its own arrays past 64 rows
            append(b, moreKeys, moreValues, 200, 10);
            append(context, moreKeys, moreValues, 300, 5);     // the context goes on: its forks do not see it
            KeyValueCache aa = a.fork();                       // shares the context's rows and a's own
            append(aa, moreKeys, moreValues, 390, 7);
            append(a, moreKeys, moreValues, 150, 3);           // a goes on after its fork

            assertEquals(N + 153, a.size());
            assertEquals(N + 10, b.size());
            assertEquals(N + 150 + 7, aa.size());
            assertEquals(N + 150, aa.sharedRows());
            assertTrue(a.allocatedBytes() < 2L * 400 * D * 2, "a fork's arrays hold its own rows: "
                    + a.allocatedBytes());

            KeyValueCache wholeA = whole(keys, values, moreKeys, moreValues, 0, 153, p);
            KeyValueCache wholeB = whole(keys, values, moreKeys, moreValues, 200, 10, p);
            KeyValueCache wholeAa = whole(keys, values, moreKeys, moreValues, 0, 150, p);
            append(wholeAa, moreKeys, moreValues, 390, 7);
            KeyValueCache wholeContext = whole(keys, values, moreKeys, moreValues, 300, 5, p);
            assertReadsEqual(wholeA, a, 161);
            assertReadsEqual(wholeB, b, 162);
            assertReadsEqual(wholeAa, aa, 163);
            assertReadsEqual(wholeContext, context, 164);

            KeyValueCache copy = aa.copy();
            assertEquals(0, copy.sharedRows());
            assertReadsEqual(wholeAa, copy, 165);
        }
    }

    /** Every read of {@code actual} against {@code expected}, bit for bit, with every kernel. */
    private static void assertReadsEqual(KeyValueCache expected, KeyValueCache actual, long seed) {
        assertEquals(expected.size(), actual.size());
        int n = expected.size();
        assertArrayEquals(expected.keyMatrix().data(), actual.keyMatrix().data());
        assertArrayEquals(expected.valueMatrix().data(), actual.valueMatrix().data());
        SplittableRandom random = new SplittableRandom(seed);
        float[] q = new float[D];
        for (int i = 0; i < D; i++) {
            q[i] = (float) random.nextGaussian();
        }
        // a range across the boundary and ids on both sides of it (ascending, as selections are)
        int from = N - 100;
        int count = n - from;
        int[] ids = new int[300];
        for (int j = 0; j < 200; j++) {
            ids[j] = j * (N / 200);
        }
        for (int j = 200; j < 300; j++) {
            ids[j] = N - 100 + (j - 200) * (n - N + 100) / 100;
        }
        for (VectorKernels k : kernels()) {
            float[] e = new float[count];
            float[] a = new float[count];
            expected.dotKeys(k, q, 0, from, count, e, 0);
            actual.dotKeys(k, q, 0, from, count, a, 0);
            assertArrayEquals(e, a, k.name() + " dotKeys");
            float[] eo = new float[D];
            float[] ao = new float[D];
            expected.addValues(k, e, 0, from, count, eo, 0);
            actual.addValues(k, e, 0, from, count, ao, 0);
            assertArrayEquals(eo, ao, k.name() + " addValues");
            float[] es = new float[ids.length];
            float[] as = new float[ids.length];
            expected.dotSelectedKeys(k, q, 0, ids, ids.length, es);
            actual.dotSelectedKeys(k, q, 0, ids, ids.length, as);
            assertArrayEquals(es, as, k.name() + " dotSelectedKeys");
            expected.sumSelectedValues(k, es, ids, ids.length, eo, 0);
            actual.sumSelectedValues(k, es, ids, ids.length, ao, 0);
            assertArrayEquals(eo, ao, k.name() + " sumSelectedValues");
            float[] eg = new float[ids.length * D];
            float[] ag = new float[ids.length * D];
            expected.valueRowsAt(k, ids, 0, ids.length, eg);
            actual.valueRowsAt(k, ids, 0, ids.length, ag);
            assertArrayEquals(eg, ag, k.name() + " valueRowsAt");
        }
    }

    @Test
    void aFloat32ForkIsACopyWithItsOwnArrays() {
        FloatMatrix keys = TestData.gaussian(300, D, 91);
        FloatMatrix values = TestData.gaussian(300, D, 92);
        KeyValueCache context = KeyValueCache.of(keys, values);
        KeyValueCache fork = context.fork();
        assertEquals(0, fork.sharedRows());
        assertNotSame(context.keys(), fork.keys());
        fork.append(keys.data(), 0, values.data(), 0);
        assertEquals(300, context.size());
        assertArrayEquals(java.util.Arrays.copyOf(fork.keys(), 300 * D), java.util.Arrays.copyOf(context.keys(),
                300 * D));
    }

    @Test
    void aForkedSketchScoresWhatAWholeSketchScores() {
        FloatMatrix keys = TestData.gaussian(N, D, 101);
        FloatMatrix values = TestData.gaussian(N, D, 102);
        FloatMatrix moreKeys = TestData.gaussian(200, D, 103);
        KeyValueCache context = KeyValueCache.of(keys, values, KeyValueCache.Precision.F16);
        KeySketch sketch = KeySketch.of(context);
        KeyValueCache forkCache = context.fork();
        KeySketch fork = sketch.fork(forkCache);
        assertEquals(0, fork.bytes(), "a fork codes none of the context's rows again");
        append(forkCache, moreKeys, moreKeys, 0, 130);
        fork.appendUpTo(forkCache);
        KeySketch forkOfFork = fork.fork(forkCache);        // the fork appended: coded anew from its cache
        append(context, moreKeys, moreKeys, 150, 9);        // the context goes on after its fork
        sketch.appendUpTo(context);
        assertEquals(N + 130, fork.rows());
        assertEquals(130L * (D + 4), fork.bytes());
        assertThrows(IllegalStateException.class, fork::codes);

        KeySketch wholeFork = KeySketch.of(whole(keys, values, moreKeys, moreKeys, 0, 130,
                KeyValueCache.Precision.F16));
        int[] ids = new int[260];
        for (int j = 0; j < 200; j++) {
            ids[j] = 7 + j * (N / 200);
        }
        for (int j = 200; j < 260; j++) {
            ids[j] = N + 2 * (j - 200);
        }
        int queries = 4;
        float[] q = TestData.gaussian(queries, D, 104).data();
        for (VectorKernels k : kernels()) {
            float[] expected = new float[ids.length];
            float[] actual = new float[ids.length];
            float[] again = new float[ids.length];
            k.dotSelectedCodes(q, D, wholeFork.codes(), D, wholeFork.scales(), ids, 0, ids.length, expected, 0);
            fork.dotSelected(k, q, D, ids, 0, ids.length, actual, 0);
            forkOfFork.dotSelected(k, q, D, ids, 0, ids.length, again, 0);
            assertArrayEquals(expected, actual, k.name() + " dotSelected");
            assertArrayEquals(expected, again, k.name() + " a fork of a fork");
            float[][] many = new float[queries][ids.length + 3];
            fork.dotSelectedMany(k, q, 0, D, queries, ids, 5, ids.length - 5, many, 3);
            for (int g = 0; g < queries; g++) {
                float[] one = new float[ids.length - 5];
                k.dotSelectedCodes(q, g * D, wholeFork.codes(), D, wholeFork.scales(), ids, 5, ids.length - 5, one,
                        0);
                assertArrayEquals(one, java.util.Arrays.copyOfRange(many[g], 3, 3 + one.length),
                        k.name() + " dotSelectedMany query " + g);
            }
        }
    }
}
