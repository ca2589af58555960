package io.csattention.format;

import io.csattention.core.CentroidDistance;
import io.csattention.core.MissingScore;

/**
 * The head of an index file: identity, metadata and centroid tables, read without the lists and KV (and so without
 * checking the footer's checksum; {@link IndexFile#read} checks it).
 *
 * @param centroids [m, C, d/m], row-major
 */
public record IndexFileSummary(int version, String contextId, int layer, int kvHead, int keys, int dim,
                               int subspaces, int centroidCount, int listLength, double listFraction, long seed,
                               CentroidDistance distance, MissingScore missingScore, float[] centroids)
        implements java.io.Serializable {

    /** Bytes of the whole file this summary came from, computed from its shapes. */
    public long fileBytes() {
        return IndexFile.fileBytes(contextId, keys, dim, subspaces, centroidCount, listLength);
    }
}
