package io.csattention.device.cuda;

import io.csattention.core.BudgetPlan;
import io.csattention.core.CSAttentionIndex;
import io.csattention.core.CSAttentionSettings;
import io.csattention.core.FloatMatrix;
import io.csattention.core.KeySketch;
import io.csattention.core.KeyValueCache;
import io.csattention.core.PackedLists;
import io.csattention.core.TestData;
import io.csattention.kernel.Kernels;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * {@link DecodeBytes} against a count made here from the arrays the GPU decoder uploads (the packed lists' and the key
 * sketch's own lengths, not the index's list length) and the kernels' access pattern written out once more, on an
 * index of two blocks of 65,536 keys.
 */
class DecodeBytesTest {

    private static final long SEED = 29L;

    @Test
    void countsEveryArrayTheDecodeKernelsTouch() {
        System.out.println("DecodeBytesTest seed=" + SEED);
        int n = 70_001;
        int d = 16;
        FloatMatrix keys = TestData.gaussian(n, d, SEED);
        FloatMatrix prefill = TestData.gaussian(256, d, SEED + 1);
        CSAttentionSettings settings = CSAttentionSettings.defaults().withCentroids(16).withSparsity(0.95)
                .withRescoreFactor(2.0).withSeed(SEED);
        CSAttentionIndex index = CSAttentionIndex.build(Kernels.preferred(), keys, prefill, settings);
        KeyValueCache cache = KeyValueCache.of(keys, TestData.gaussian(n, d, SEED + 2));
        PackedLists packed = PackedLists.of(index);
        KeySketch sketch = KeySketch.of(cache);
        int m = index.subspaces();
        int lists = m * index.centroidCount();
        assertEquals(2, packed.blocks());

        // the layout as uploaded: bytes per list entry and per sketched key from the arrays themselves
        long entriesPerList = packed.offsets().length / lists;
        assertEquals(packed.offsets().length, packed.units().length);
        long entryBytes = ((long) Character.BYTES * packed.offsets().length + packed.units().length)
                / packed.offsets().length;
        long sketchRowBytes = (long) sketch.codes().length / n + 4L * sketch.scales().length / n;
        long centroidBytes = 4L * index.centroids().length;

        BudgetPlan plan = settings.plan(n);
        int middle = plan.middleEnd() - plan.middleStart();
        int chosen = plan.chosen();
        int wanted = (int) Math.min(middle, Math.ceil(2.0 * chosen));
        long splits = (plan.budget() + 255) / 256;
        long chosenEntries = m * entriesPerList;

        long nearest = 4L * d + centroidBytes + 4L * m;
        // one list id read per entry, one block-start read (two blocks: one step of the search), offset and unit
        long accumulate = chosenEntries * (4 + 4 + entryBytes);
        long sums = 4L * n + chosenEntries * 8 + 3L * 4 * middle + 4L * wanted;
        long rescore = 4L * wanted + wanted * sketchRowBytes + 4L * d + 4L * wanted;
        long topRows = 5L * 4 * wanted + 2L * 4 * chosen;
        long sinkWindow = 4L * (plan.sink() + plan.window());
        long attend = 2L * 4 * plan.budget() * d + 4L * plan.budget() + splits * 4 * d + splits * 4 * (2 + d);
        long combine = splits * 4 * (2 + d) + 4L * d;

        DecodeBytes bytes = DecodeBytes.of(index, settings, d);
        assertEquals(nearest, bytes.centroids());
        assertEquals(accumulate, bytes.lists());
        assertEquals(sums, bytes.sumRow());
        assertEquals(rescore + topRows, bytes.rescoring());
        assertEquals(sinkWindow, bytes.sinkAndWindow());
        assertEquals(2L * 4 * plan.budget() * d + 4L * plan.budget(), bytes.keysValues());
        assertEquals(attend + combine - (2L * 4 * plan.budget() * d + 4L * plan.budget()), bytes.attentionScratch());
        assertEquals(nearest + accumulate + sums + rescore + topRows + sinkWindow + attend + combine, bytes.total());
    }

    @Test
    void withoutRescoringTheCutBySumsIsTheSelection() {
        int n = 1009;
        int d = 16;
        CSAttentionSettings settings = CSAttentionSettings.defaults().withCentroids(8).withRescoreFactor(0)
                .withSeed(SEED);
        CSAttentionIndex index = CSAttentionIndex.build(Kernels.preferred(), TestData.gaussian(n, d, SEED),
                TestData.gaussian(64, d, SEED + 1), settings);
        BudgetPlan plan = settings.plan(n);
        long entries = (long) index.subspaces() * index.listLength();
        DecodeBytes bytes = DecodeBytes.of(index, settings, d);
        assertEquals(0, bytes.rescoring());
        // one block: no block-start search
        assertEquals(entries * (4 + 2 + 1), bytes.lists());
        assertEquals(4L * n + 8 * entries + 3L * 4 * (plan.middleEnd() - plan.middleStart()) + 4L * plan.chosen(),
                bytes.sumRow());
    }

    @Test
    void theBlockGemmReadsKeysAndValuesOncePerTileOfQueries() {
        // 70 queries: two tiles of 64 rows; 1009 keys: 16 key tiles, one split of 2,048; d = 32: one column tile
        long keysValues = 2L * 4 * 1009 * 32 * 2;
        long scoreRows = 4L * 1009 * (1 + 3 + 1);
        long partials = 2L * 4 * 32;
        long queryReads = 16L * 4 * 32;
        long rowSumAndOutput = 4 + 4L * 32;
        assertEquals((keysValues + 35) / 70 + scoreRows + partials + queryReads + rowSumAndOutput,
                DecodeBytes.gemmAttentionPerQuery(1009, 32, 70));
    }

    @Test
    void fullAttentionReadsEveryKeyAndValueRowOnce() {
        assertEquals(2L * 4 * 131_072 * 128, DecodeBytes.fullAttentionPerQuery(131_072, 128));
    }
}
