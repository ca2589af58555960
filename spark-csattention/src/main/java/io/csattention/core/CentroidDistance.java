package io.csattention.core;

/** How a decode query picks its centroid in each subspace. */
public enum CentroidDistance {
    /** The centroid with the largest inner product with the query's sub-vector. */
    INNER_PRODUCT,
    /** The centroid nearest in squared L2 distance (the metric k-means trained with). */
    L2
}
