package io.csattention.core;

import io.csattention.kernel.VectorKernels;

import java.util.Arrays;

/**
 * The keys generated after the build (streaming), per list: a key scored against every list's scoring centroid joins
 * each list whose floor it beats. L is not fixed, it grows by about alpha per appended key, so L stays close to
 * alpha * N and the floors stay as built.
 */
final class StreamingOverflow {
    private final int[][] ids;
    private final float[][] scores;
    private final int[] counts;

    StreamingOverflow(int lists) {
        ids = new int[lists][];
        scores = new float[lists][];
        counts = new int[lists];
    }

    /**
     * Appends key {@code id} (the row {@code keyData[keyOff .. keyOff + d)}, in the caller's dimension order) to the
     * lists it enters.
     */
    void append(VectorKernels kernels, IndexTables tables, float[] keyData, int keyOff, int id) {
        IndexShape shape = tables.shape();
        int dim = shape.dim();
        int width = shape.width();
        RopeInfo rope = tables.rope();
        float[] key = new float[dim];
        for (int i = 0; i < dim; i++) {
            key[i] = keyData[keyOff + (rope == null ? i : rope.sourceDimension(i, dim))];
        }
        float[] scoring = tables.scoringCentroids();
        float[] floors = tables.floors();
        for (int list = 0; list < shape.lists(); list++) {
            int j = list / shape.centroidCount();
            float score = kernels.dot(scoring, list * width, key, j * width, width);
            if (score > floors[list]) {
                add(list, id, score);
            }
        }
    }

    synchronized void add(int list, int id, float score) {
        if (ids[list] == null) {
            ids[list] = new int[4];
            scores[list] = new float[4];
        } else if (counts[list] == ids[list].length) {
            ids[list] = Arrays.copyOf(ids[list], counts[list] * 2);
            scores[list] = Arrays.copyOf(scores[list], counts[list] * 2);
        }
        ids[list][counts[list]] = id;
        scores[list][counts[list]++] = score;
    }

    int count(int list) {
        return counts[list];
    }

    int[] ids(int list) {
        return ids[list];
    }

    float[] scores(int list) {
        return scores[list];
    }

    boolean isEmpty() {
        for (int c : counts) {
            if (c > 0) {
                return false;
            }
        }
        return true;
    }

    /** 4-byte id and 4-byte score per appended entry. */
    long bytes() {
        long total = 0;
        for (int c : counts) {
            total += 8L * c;
        }
        return total;
    }
}
