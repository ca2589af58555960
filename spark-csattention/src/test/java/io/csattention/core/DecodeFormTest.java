package io.csattention.core;

import io.csattention.kernel.Kernels;
import io.csattention.kernel.VectorKernels;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.HashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The decode form of an index: the packed lists and the int8 key sketch hold what the build form holds. */
class DecodeFormTest {

    private static final long SEED = 11L;
    private static final VectorKernels KERNELS = Kernels.preferred();

    @BeforeAll
    static void printSeed() {
        System.out.println("DecodeFormTest seed=" + SEED);
    }

    /** More than one block of 65,536 keys, so that block offsets and block starts are exercised. */
    @Test
    void packedListsHoldEveryEntryInUnitsAndAscendingPerBlock() {
        int n = 70_001;
        int d = 8;
        FloatMatrix keys = TestData.gaussian(n, d, SEED);
        FloatMatrix prefill = TestData.gaussian(512, d, SEED + 1);
        CSAttentionSettings settings = CSAttentionSettings.defaults().withSparsity(0.99).withCentroids(4)
                .withKmeansIterations(2);
        CSAttentionIndex index = CSAttentionIndex.build(KERNELS, keys, prefill, settings);
        PackedLists packed = PackedLists.of(index);
        assertEquals(2, packed.blocks());
        int lists = index.subspaces() * index.centroidCount();
        int length = index.listLength();
        for (int list = 0; list < lists; list++) {
            Map<Integer, Integer> expected = new HashMap<>();
            for (int r = 0; r < length; r++) {
                int at = list * length + r;
                float difference = index.listScores()[at] - index.missing()[list];
                expected.put(index.listIds()[at], PackedLists.toUnits(difference, packed.unit()));
            }
            int found = 0;
            for (int b = 0; b < packed.blocks(); b++) {
                int previous = -1;
                for (int e = packed.start(list, b); e < packed.start(list, b + 1); e++) {
                    int id = (b << PackedLists.BLOCK_BITS) + packed.offsets()[e];
                    assertTrue(id > previous, "list " + list + " block " + b + " must ascend at entry " + e);
                    previous = id;
                    assertEquals(expected.get(id), (int) packed.units()[e], "units of key " + id + " in list " + list);
                    found++;
                }
            }
            assertEquals(length, found, "entries of list " + list);
        }
        assertTrue(packed.bytes() < 8L * lists * length / 2, "3 bytes per entry: " + packed.bytes());
    }

    @Test
    void keySketchIsWithinHalfAStepAndStreamsLikeABulkBuild() {
        int n = 300;
        int d = 19;
        FloatMatrix keys = TestData.gaussian(n, d, SEED + 2);
        keys.data()[5 * d + 3] = 0f;
        java.util.Arrays.fill(keys.data(), 7 * d, 8 * d, 0f); // an all-zero row
        KeySketch bulk = KeySketch.of(KeyValueCache.of(keys, keys));
        for (int r = 0; r < n; r++) {
            float scale = bulk.scales()[r];
            for (int i = 0; i < d; i++) {
                float k = keys.data()[r * d + i];
                assertEquals(k, scale * bulk.codes()[r * d + i], scale / 2 + 1e-6f, "row " + r + " dim " + i);
            }
        }
        assertEquals(0f, bulk.scales()[7]);

        KeyValueCache growing = new KeyValueCache(d, 16);
        KeySketch streamed = null;
        for (int r = 0; r < n; r++) {
            growing.append(keys.data(), r * d, keys.data(), r * d);
            if (streamed == null) {
                streamed = KeySketch.of(growing);
            } else {
                streamed.appendUpTo(growing);
            }
        }
        assertEquals(n, streamed.rows());
        assertEquals(java.util.Arrays.toString(java.util.Arrays.copyOf(bulk.codes(), n * d)),
                java.util.Arrays.toString(java.util.Arrays.copyOf(streamed.codes(), n * d)));
        assertEquals((long) n * (d + 4), streamed.bytes());
    }
}
