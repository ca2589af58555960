package io.csattention.device;

import io.csattention.core.Attention;
import io.csattention.core.BudgetPlan;
import io.csattention.core.CSAttentionIndex;
import io.csattention.core.CSAttentionSettings;
import io.csattention.core.CentroidDistance;
import io.csattention.core.FloatMatrix;
import io.csattention.core.KeySketch;
import io.csattention.core.KeyValueCache;
import io.csattention.core.PackedLists;
import io.csattention.core.Selections;
import io.csattention.kernel.VectorKernels;

import java.util.Arrays;
import java.util.stream.IntStream;

/**
 * The selection of {@code kernels/src/decode.cu} restated in Java, float operation for float operation where the
 * order matters: {@code nearest_centroids} (one fused multiply-add chain per centroid, the best value, then the lower
 * index), {@code accumulate_lists} (the packed lists, each entry's block found from the block starts),
 * {@code top_k_sums} and {@code top_k_rows} (larger key, then lower id) and {@code rescore_codes} (32 lanes, each a
 * fused multiply-add chain over the coordinates {@code lane, lane + 32, ...}, then the shuffle-down tree of a warp,
 * times the row's scale). It lets the GPU contract ({@link GpuAgreement}) be tried here, where no GPU runs: what it
 * accepts of this model it should accept of the device, whose float sums run in the same order. The emulator
 * ({@code kernels/emulator}) checks that the kernels themselves compute this.
 */
final class GpuDecodeModel {

    private GpuDecodeModel() {
    }

    /** The block as the GPU decoder would give it: its selections, and attention over them on the CPU kernels. */
    static DecodedBlock decode(VectorKernels kernels, KeyValueCache cache, CSAttentionIndex index,
                               CSAttentionSettings settings, FloatMatrix queries) {
        BudgetPlan plan = settings.plan(cache.size());
        int d = cache.dim();
        PackedLists packed = PackedLists.of(index);
        KeySketch sketch = KeySketch.of(cache);
        int[] selected = new int[queries.rows() * plan.budget()];
        float[] outputs = new float[queries.rows() * d];
        for (int q = 0; q < queries.rows(); q++) {
            int[] keys = select(index, packed, sketch, settings.rescoreFactor(), plan, queries.data(), q * d);
            System.arraycopy(keys, 0, selected, q * plan.budget(), plan.budget());
            Attention.attend(kernels, queries.data(), q * d, cache, keys, outputs, q * d);
        }
        return new DecodedBlock(plan, selected, new FloatMatrix(queries.rows(), d, outputs));
    }

    private static int[] select(CSAttentionIndex index, PackedLists packed, KeySketch sketch, double rescoreFactor,
                                BudgetPlan plan, float[] queries, int off) {
        int n = index.keys();
        int from = plan.middleStart();
        int to = plan.middleEnd();
        int chosen = plan.chosen();
        if (chosen == 0) {
            return Selections.assembleAscending(plan, new int[0], 0);
        }
        int[] sums = new int[n];
        int length = index.listLength();
        int blocks = packed.blocks();
        for (int j = 0; j < index.subspaces(); j++) {
            int list = j * index.centroidCount() + nearestCentroid(index, queries, off, j);
            for (int entry = list * length; entry < (list + 1) * length; entry++) {
                int block = 0;
                while (block + 1 < blocks && packed.starts()[list * blocks + block + 1] <= entry) {
                    block++;
                }
                int id = (block << PackedLists.BLOCK_BITS) + packed.offsets()[entry];
                if (id >= from && id < to) {
                    sums[id] += packed.units()[entry];
                }
            }
        }
        int wanted = rescoreFactor > 0 ? (int) Math.min(to - from, Math.ceil(rescoreFactor * chosen)) : chosen;
        int[] candidates = best(IntStream.range(from, to).toArray(), id -> sums[id] + 32768L, wanted);
        if (rescoreFactor > 0 && wanted > chosen) {
            float[] exact = new float[n];
            for (int id : candidates) {
                exact[id] = warpDot(queries, off, sketch, id);
            }
            candidates = best(candidates, id -> orderedKey(exact[id]), chosen);
        }
        return Selections.assembleAscending(plan, candidates, candidates.length);
    }

    /** nearest_centroids: per thread a fma chain over the sub-vector; the largest value, ties to the lower index. */
    private static int nearestCentroid(CSAttentionIndex index, float[] queries, int off, int j) {
        int width = index.dim() / index.subspaces();
        boolean l2 = index.distance() == CentroidDistance.L2;
        float[] centroids = index.centroids();
        int best = 0;
        float bestValue = Float.NEGATIVE_INFINITY;
        for (int c = 0; c < index.centroidCount(); c++) {
            int at = (j * index.centroidCount() + c) * width;
            float value = 0f;
            for (int t = 0; t < width; t++) {
                float a = queries[off + j * width + t];
                if (l2) {
                    float diff = a - centroids[at + t];
                    value = Math.fma(diff, diff, value);
                } else {
                    value = Math.fma(a, centroids[at + t], value);
                }
            }
            value = l2 ? -value : value;
            if (value > bestValue || c == 0) {
                bestValue = value;
                best = c;
            }
        }
        return best;
    }

    /** rescore_codes: 32 lanes of fma chains, the shuffle-down tree to lane 0, times the row's scale. */
    static float warpDot(float[] queries, int off, KeySketch sketch, int id) {
        int d = sketch.dim();
        float[] lanes = new float[32];
        for (int lane = 0; lane < 32; lane++) {
            for (int t = lane; t < d; t += 32) {
                lanes[lane] = Math.fma(queries[off + t], sketch.codes()[id * d + t], lanes[lane]);
            }
        }
        for (int o = 16; o > 0; o >>= 1) {
            float[] next = new float[32];
            for (int lane = 0; lane < 32; lane++) {
                next[lane] = lanes[lane] + (lane + o < 32 ? lanes[lane + o] : lanes[lane]);
            }
            lanes = next;
        }
        return lanes[0] * sketch.scales()[id];
    }

    /** csa_ordered_key: an unsigned order of floats, both zeros equal. */
    private static long orderedKey(float value) {
        int bits = Float.floatToRawIntBits(value + 0f);
        return Integer.toUnsignedLong(bits < 0 ? ~bits : bits | 0x80000000);
    }

    /** The best k of {@code ids} (ascending) by key, ties to the lower id, ascending: csa_block_top_k_keys. */
    private static int[] best(int[] ids, java.util.function.IntToLongFunction key, int k) {
        int[] order = Arrays.stream(ids).boxed()
                .sorted((a, b) -> key.applyAsLong(a) != key.applyAsLong(b)
                        ? Long.compare(key.applyAsLong(b), key.applyAsLong(a)) : Integer.compare(a, b))
                .limit(k).mapToInt(Integer::intValue).toArray();
        Arrays.sort(order);
        return order;
    }
}
