package io.csattention.device;

import io.csattention.core.BudgetPlan;
import io.csattention.core.CSAttentionIndex;
import io.csattention.core.CSAttentionSettings;
import io.csattention.core.CentroidDistance;
import io.csattention.core.FloatMatrix;
import io.csattention.core.KeySketch;
import io.csattention.core.KeyValueCache;

import java.util.Arrays;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * What a GPU decode on the CPU's algorithm must give: the CPU's selection, key for key, except where one of the
 * algorithm's two float steps meets a near-tie that float reassociation can break either way.
 * <ul>
 *   <li>the re-scoring over the int8 sketch (a d-term float sum, in SIMD lanes on the CPU, in warp lanes on the GPU):
 *       a key may differ only if its sketch score, computed here in float64, is within twice the worst-case rounding
 *       of such a sum ({@code 2 d 2^-24 sum_i |q_i c_i| scale}, for the key and for the CPU's cut) of the CPU's
 *       cut;</li>
 *   <li>the centroid choice (a width-term float sum): a query whose best two centroids of some subspace are within
 *       the rounding of their sums may take another list; it is then held to the recall bar alone.</li>
 * </ul>
 * The list sums are integers and add exactly in any order, so a difference anywhere else fails. Every query also
 * keeps recall >= {@value DecodeBackendContractTest#MIN_RECALL} of the CPU selection, and the outputs stay within
 * {@value DecodeBackendContractTest#MAX_RELATIVE_ERROR} relative L2 error of the CPU's.
 */
final class GpuAgreement {

    private static final double ULP = Math.ulp(1.0f) / 2; // 2^-24

    private GpuAgreement() {
    }

    /** Asserts the contract for {@code actual} against the CPU's {@code expected}; returns the near-tie keys. */
    static int assertSelectsLikeCpu(KeyValueCache cache, CSAttentionIndex index, CSAttentionSettings settings,
                                    FloatMatrix queries, DecodedBlock expected, DecodedBlock actual, String what) {
        assertEquals(expected.plan(), actual.plan(), what + ": plan");
        BudgetPlan plan = expected.plan();
        int d = cache.dim();
        int from = plan.middleStart();
        int to = plan.middleEnd();
        int candidates = settings.rescoreFactor() > 0
                ? (int) Math.min(to - from, Math.ceil(settings.rescoreFactor() * plan.chosen())) : plan.chosen();
        boolean rescored = settings.rescoreFactor() > 0 && candidates > plan.chosen();
        KeySketch sketch = rescored ? KeySketch.of(cache) : null;
        int nearTies = 0;
        for (int q = 0; q < expected.queries(); q++) {
            int[] want = expected.selected(q);
            int[] got = actual.selected(q);
            String query = what + ": query " + q;
            assertTrue(DecodeBackendContractTest.isAscendingWithPadding(got), query + " selection must be ascending");
            double recall = DecodeBackendContractTest.recall(want, got);
            assertTrue(recall >= DecodeBackendContractTest.MIN_RECALL, query + " recall of the CPU selection "
                    + recall);
            TreeSet<Integer> difference = symmetricDifference(want, got);
            if (difference.isEmpty() || centroidNearTie(index, queries.data(), q * d)) {
                continue;
            }
            assertTrue(rescored, query + " selects " + difference + " unlike the CPU without a re-scoring step or a "
                    + "centroid near-tie");
            double cut = Double.POSITIVE_INFINITY;
            double cutError = 0;
            for (int id : want) {
                if (id >= from && id < to) {
                    cut = Math.min(cut, sketchScore(queries.data(), q * d, sketch, id));
                    cutError = Math.max(cutError, sketchError(queries.data(), q * d, sketch, id));
                }
            }
            for (int id : difference) {
                double score = sketchScore(queries.data(), q * d, sketch, id);
                double bound = 2 * (sketchError(queries.data(), q * d, sketch, id) + cutError);
                assertTrue(id >= from && id < to && Math.abs(score - cut) <= bound, String.format(
                        "%s key %d differs from the CPU selection and is not a near-tie of the re-scoring cut: sketch "
                                + "score %.9g, cut %.9g, rounding bound %.3g", query, id, score, cut, bound));
            }
            nearTies += difference.size();
        }
        double error = DecodeBackendContractTest.relativeError(expected.outputs(), actual.outputs());
        assertTrue(error <= DecodeBackendContractTest.MAX_RELATIVE_ERROR, what + ": relative output error " + error);
        return nearTies;
    }

    private static TreeSet<Integer> symmetricDifference(int[] a, int[] b) {
        TreeSet<Integer> left = new TreeSet<>();
        Arrays.stream(a).filter(id -> id >= 0).forEach(left::add);
        TreeSet<Integer> right = new TreeSet<>();
        Arrays.stream(b).filter(id -> id >= 0).forEach(right::add);
        TreeSet<Integer> difference = new TreeSet<>(left);
        difference.addAll(right);
        left.retainAll(right);
        difference.removeAll(left);
        return difference;
    }

    /** {@code scale * q . codes} of key {@code id} in float64. */
    static double sketchScore(float[] query, int off, KeySketch sketch, int id) {
        int d = sketch.dim();
        double sum = 0;
        for (int t = 0; t < d; t++) {
            sum += (double) query[off + t] * sketch.codes()[id * d + t];
        }
        return sum * sketch.scales()[id];
    }

    /** The worst-case rounding of the float sum of {@link #sketchScore}, twice: {@code 2 d 2^-24 sum |q c| scale}. */
    static double sketchError(float[] query, int off, KeySketch sketch, int id) {
        int d = sketch.dim();
        double magnitude = 0;
        for (int t = 0; t < d; t++) {
            magnitude += Math.abs((double) query[off + t] * sketch.codes()[id * d + t]);
        }
        return 2 * d * ULP * magnitude * sketch.scales()[id];
    }

    /** Whether, in some subspace, the best two centroids of the query are within the rounding of their float sums. */
    static boolean centroidNearTie(CSAttentionIndex index, float[] query, int off) {
        int width = index.dim() / index.subspaces();
        boolean l2 = index.distance() == CentroidDistance.L2;
        float[] centroids = index.centroids();
        for (int j = 0; j < index.subspaces(); j++) {
            double best = Double.NEGATIVE_INFINITY;
            double second = Double.NEGATIVE_INFINITY;
            double magnitude = 0;
            for (int c = 0; c < index.centroidCount(); c++) {
                int at = (j * index.centroidCount() + c) * width;
                double value = 0;
                double size = 0;
                for (int t = 0; t < width; t++) {
                    double a = query[off + j * width + t];
                    double term = l2 ? (a - centroids[at + t]) * (a - centroids[at + t]) : a * centroids[at + t];
                    value += term;
                    size += Math.abs(term);
                }
                value = l2 ? -value : value;
                magnitude = Math.max(magnitude, size);
                if (value > best) {
                    second = best;
                    best = value;
                } else if (value > second) {
                    second = value;
                }
            }
            if (best - second <= 4 * width * ULP * magnitude) {
                return true;
            }
        }
        return false;
    }
}
