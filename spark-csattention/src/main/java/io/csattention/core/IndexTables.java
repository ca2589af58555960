package io.csattention.core;

/**
 * The lookup tables of one KV head as built or read from an index file, without behaviour.
 *
 * <p>Layout (all row-major): centroids and scoringCentroids [m, C, d/m]; listIds and listScores [m, C, L], each list
 * sorted by descending score (both empty once the decoder has packed them); floors and missing [m, C]. With
 * {@code rope} set, centroids and lists live in the pair-contiguous layout of {@link RopeInfo#sourceDimension};
 * {@code positionFree[j]} marks the slow bands whose {@code centroids} are position-free and whose
 * {@code scoringCentroids} (used for the lists and streaming) are rotated to the reference position. Without RoPE
 * {@code scoringCentroids} is the {@code centroids} array itself.
 *
 * @param shape            N, d, m, C, L and the build settings
 * @param centroids        [m, C, d/m], what a decode query's sub-vector is compared with
 * @param listIds          [m, C, L] key ids, or empty once dropped
 * @param listScores       [m, C, L] partial scores, or empty once dropped
 * @param floors           [m, C] the lowest kept score of each list
 * @param missing          [m, C] the estimate used for keys absent from each list
 * @param rope             the RoPE the index was built with, or null
 * @param positionFree     [m] the bands indexed position-free
 * @param scoringCentroids [m, C, d/m] the centroids the lists were scored with
 */
public record IndexTables(IndexShape shape, float[] centroids, int[] listIds, float[] listScores, float[] floors,
                          float[] missing, RopeInfo rope, boolean[] positionFree, float[] scoringCentroids) {

    public IndexTables {
        int lists = shape.lists();
        positionFree = positionFree.clone();
        Check.that(centroids.length == lists * shape.width(), "centroids must hold m*C*d/m floats",
                "centroids.length", centroids.length);
        Check.that(scoringCentroids.length == centroids.length, "scoring centroids must hold m*C*d/m floats",
                "scoringCentroids.length", scoringCentroids.length);
        Check.that(positionFree.length == shape.subspaces(), "positionFree must have one flag per subspace",
                "positionFree.length", positionFree.length);
        Check.that((listIds.length == (long) lists * shape.listLength() || listIds.length == 0)
                        && listScores.length == listIds.length,
                "lists must hold m*C*L entries (or none, once dropped)", "lists.length", listIds.length);
    }

    /** Tables built without RoPE information: every subspace as it is, the lists scored with the centroids. */
    public static IndexTables withoutRope(IndexShape shape, float[] centroids, int[] listIds, float[] listScores,
                                          float[] floors, float[] missing) {
        return new IndexTables(shape, centroids, listIds, listScores, floors, missing, null,
                new boolean[shape.subspaces()], centroids);
    }

    /** These tables without their build-form lists, everything else shared. */
    IndexTables withoutLists() {
        return new IndexTables(shape, centroids, new int[0], new float[0], floors, missing, rope, positionFree,
                scoringCentroids);
    }

    /** Bytes of centroids, scoring centroids when they differ, lists (4-byte id and score), floors and estimates. */
    long bytes() {
        long scoring = scoringCentroids == centroids ? 0 : 4L * scoringCentroids.length;
        return 4L * centroids.length + scoring + 8L * listIds.length + 8L * floors.length;
    }
}
