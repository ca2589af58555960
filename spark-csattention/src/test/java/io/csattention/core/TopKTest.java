package io.csattention.core;

import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

class TopKTest {

    private static final long SEED = 17L;

    /** The radix cut keeps the same set as quickselect (ties to the lower id) and keeps the survivors' order. */
    @Test
    void keepLargestAgreesWithPartitionAndKeepsOrder() {
        System.out.println("TopKTest seed=" + SEED);
        SplittableRandom random = new SplittableRandom(SEED);
        int[] histogram = new int[TopK.RADIX_BUCKETS];
        for (int trial = 0; trial < 300; trial++) {
            int count = 1 + random.nextInt(3000);
            int k = random.nextInt(count + 2);
            float[] scores = new float[count];
            int[] ids = new int[count];
            for (int i = 0; i < count; i++) {
                ids[i] = 2 * i + random.nextInt(2);
                // coarse values force many ties; some negative, some zero of either sign
                // softmax-like weights: most flushed to 0 or crowded near it in the histogram's lowest bucket
                scores[i] = trial % 3 == 0 ? random.nextInt(7) - 3
                        : trial % 3 == 1 ? (float) Math.exp(-120 * Math.abs(random.nextGaussian()))
                        : (float) random.nextGaussian();
                if (trial % 5 == 0 && i % 11 == 0) {
                    scores[i] = i % 2 == 0 ? 0f : -0f;
                }
            }
            int[] expected = TopK.largest(scores, ids, count, k);
            Arrays.sort(expected);
            float[] s = scores.clone();
            int[] kept = ids.clone();
            int n = TopK.keepLargest(s, kept, count, k, histogram);
            assertEquals(Math.min(k, count), n, "trial " + trial);
            int[] got = Arrays.copyOf(kept, n);
            assertArrayEquals(expected, got, "trial " + trial + " count=" + count + " k=" + k + " seed " + SEED);
        }
    }

    /** The rank-n value of the three-way quickselect is the sorted array's, with runs of equal values. */
    @Test
    void nthSmallestIsTheSortedArraysValue() {
        SplittableRandom random = new SplittableRandom(SEED);
        for (int trial = 0; trial < 300; trial++) {
            int count = 1 + random.nextInt(2000);
            int[] values = new int[count];
            int spread = trial % 2 == 0 ? 3 : Integer.MAX_VALUE;
            for (int i = 0; i < count; i++) {
                values[i] = random.nextInt(spread) - spread / 2;
            }
            int[] sorted = values.clone();
            Arrays.sort(sorted);
            int n = random.nextInt(count);
            assertEquals(sorted[n], TopK.nthSmallest(values, n), "trial " + trial + " n=" + n);
        }
    }
}
