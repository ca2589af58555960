package io.csattention.core;

/**
 * The scalar shape of one KV head's index: N keys of dimension d, m subspaces of C centroids whose lists keep L keys
 * (L = ceil(alpha N) at build time), and the build settings the tables depend on.
 *
 * @param keys          N, the keys indexed at build time
 * @param dim           d, the head dimension
 * @param subspaces     m, subspaces per head (d/m dimensions each)
 * @param centroidCount C, centroids per subspace
 * @param listLength    L, keys per centroid's list
 * @param listFraction  alpha, the share of keys each list keeps
 * @param seed          seed of the k-means and the sampling
 * @param distance      how a query picks its centroid
 * @param missingScore  the estimate of a key absent from a chosen list
 */
public record IndexShape(int keys, int dim, int subspaces, int centroidCount, int listLength, double listFraction,
                         long seed, CentroidDistance distance, MissingScore missingScore) {

    /** m * C, the number of lists. */
    public int lists() {
        return subspaces * centroidCount;
    }

    /** d / m, the dimensions of one subspace. */
    public int width() {
        return dim / subspaces;
    }
}
