package io.csattention.format;

import io.csattention.core.CentroidDistance;
import io.csattention.core.MissingScore;
import io.csattention.core.RopeInfo;

/**
 * The head of an index file: identity, metadata and centroid tables, read without the lists and KV (and so without
 * checking the footer's checksum; {@link IndexFile#read} checks it).
 *
 * @param centroids        [m, C, d/m], row-major
 * @param rope             the RoPE layout the head was indexed with (without prefill positions), or null
 * @param positionFree     per subspace, whether it is a slow band clustered position-free (all false without RoPE)
 * @param scoringCentroids the centroids the lists were scored with (slow bands rotated to the reference position);
 *                         {@code centroids} itself without RoPE
 */
public record IndexFileSummary(int version, String contextId, int layer, int kvHead, int keys, int dim,
                               int subspaces, int centroidCount, int listLength, double listFraction, long seed,
                               CentroidDistance distance, MissingScore missingScore, float[] centroids,
                               RopeInfo rope, boolean[] positionFree, float[] scoringCentroids)
        implements java.io.Serializable {

    /** Bytes of the whole file this summary came from, computed from its shapes. */
    public long fileBytes() {
        return IndexFile.fileBytes(version, contextId, keys, dim, subspaces, centroidCount, listLength, rope);
    }
}
