package io.csattention.device.cuda;

import io.csattention.core.BudgetPlan;
import io.csattention.core.CSAttentionIndex;
import io.csattention.core.CSAttentionSettings;
import io.csattention.core.PackedLists;

/**
 * Every byte {@link CudaContextDecoder#decode} asks of device memory per query, kernel by kernel, from the layout it
 * uploads ({@link PackedLists}: 16-bit key offsets, 8-bit units, {@code lists * blocks + 1} int block starts; the int8
 * {@link io.csattention.core.KeySketch}: d codes and a float scale per key; float32 centroids, keys and values) and
 * the scratch rows it writes and reads back (the dense int sum row, candidates, their scores, the selection, the
 * attention partials). Reads and writes both count, as in the copy bandwidth they are compared with
 * ({@link CudaDecodeBackend#copyBandwidth}).
 *
 * <p>These are bytes requested, not DRAM traffic: a scattered 4-byte access (an atomic add into the sum row, a key's
 * scale) moves a whole 32-byte sector, and rows re-read by a kernel (the radix select's passes) may hit the L2 instead.
 * The sum row's entries hit by the chosen lists are counted as one 4-byte read and one 4-byte write each, as if every
 * entry fell in the middle range (an upper bound). What is left out: the block's query upload and result download
 * (host copies, not decode work) and the few bytes of launch parameters.
 *
 * @param centroids        nearest_centroids: the query and every centroid of every subspace (C x d floats), and the
 *                         chosen list ids written
 * @param lists            accumulate_lists: the chosen list ids, their block starts, offsets and units
 * @param sumRow           the sum row cleared ({@code n} ints), updated by the chosen entries (read and write), and
 *                         read by every pass of top_k_sums over the middle range; the candidates written
 * @param rescoring        rescore_codes (the candidates' ids, codes and scales, the query, the scores written) and
 *                         top_k_rows (every pass over the scores, the chosen ids read and written); 0 without
 *                         re-scoring
 * @param sinkAndWindow    the sink and window ids written
 * @param keysValues       attend_partial's selected K and V rows ({@code budget x d} floats each) and the selection
 * @param attentionScratch attend_partial's query reads (once per split of {@value CudaContextDecoder#ATTENTION_CHUNK}
 *                         keys) and partials written (max, sum, d accumulators), attend_combine's reads of them (each
 *                         once) and the output
 */
public record DecodeBytes(long centroids, long lists, long sumRow, long rescoring, long sinkAndWindow,
                          long keysValues, long attentionScratch) {

    /** Radix-select passes of {@code common.cuh} over 16-bit keys (list sums) and 32-bit keys (float scores). */
    static final int SUM_SELECT_PASSES = 2;
    static final int SCORE_SELECT_PASSES = 4;

    /** All of it. */
    public long total() {
        return centroids + lists + sumRow + rescoring + sinkAndWindow + keysValues + attentionScratch;
    }

    /** The bytes per query of decoding {@code index} over its {@code n} keys of dimension {@code d}. */
    public static DecodeBytes of(CSAttentionIndex index, CSAttentionSettings settings, int d) {
        int n = index.keys();
        return perQuery(n, d, index.subspaces(), index.centroidCount(), index.listLength(),
                PackedLists.of(index).blocks(), settings.plan(n), settings.rescoreFactor());
    }

    /**
     * The same from the layout's sizes: {@code m} subspaces of {@code centroidCount} centroids, lists of
     * {@code listLength} entries over {@code blocks} blocks of 65,536 keys; the selection of {@code plan}, with
     * {@code rescoreFactor} as {@link CudaContextDecoder} applies it.
     */
    static DecodeBytes perQuery(int n, int d, int m, int centroidCount, int listLength, int blocks, BudgetPlan plan,
                                double rescoreFactor) {
        long f = Float.BYTES;
        long i = Integer.BYTES;
        int budget = plan.budget();
        int chosen = plan.chosen();
        long middle = plan.middleEnd() - plan.middleStart();
        long centroidBytes = f * d + f * centroidCount * d + i * m;
        long listBytes = 0;
        long sumBytes = 0;
        long rescoreBytes = 0;
        if (chosen > 0) {
            long entries = (long) m * listLength;
            // every thread of accumulate_lists reads its list id and binary-searches the list's block starts
            long searchReads = blocks > 1 ? 32 - Integer.numberOfLeadingZeros(blocks - 1) : 0;
            listBytes = i * entries + i * searchReads * entries + entries * (Character.BYTES + Byte.BYTES);
            int wanted = rescoreFactor > 0 ? (int) Math.min(middle, Math.ceil(rescoreFactor * chosen)) : chosen;
            boolean rescored = rescoreFactor > 0 && wanted > chosen;
            int cut = rescored ? wanted : chosen;
            long sumPasses = cut >= middle ? 1 : SUM_SELECT_PASSES + 1;
            sumBytes = i * n + 2 * i * entries + sumPasses * i * middle + i * cut;
            if (rescored) {
                long scorePasses = chosen >= wanted ? 1 : SCORE_SELECT_PASSES + 1;
                rescoreBytes = i * wanted + (long) wanted * d + f * wanted + f * d + f * wanted
                        + scorePasses * f * wanted + 2 * i * chosen;
            }
        }
        long sinkWindow = i * (plan.sink() + plan.window());
        long keyValueBytes = 2 * f * budget * d + i * budget;
        long splits = (budget + CudaContextDecoder.ATTENTION_CHUNK - 1) / CudaContextDecoder.ATTENTION_CHUNK;
        long partials = f * splits * (2 + d);
        long scratch = f * splits * d + partials + partials + f * d;
        return new DecodeBytes(centroidBytes, listBytes, sumBytes, rescoreBytes, sinkWindow, keyValueBytes, scratch);
    }

    /**
     * Bytes per query of the block-GEMM full attention ({@link CudaContextDecoder#attendAllGemm}) over {@code batch}
     * queries: K and V read once per tile of {@value PtxFunction#GEMM_TILE} queries (by each thread block of its tile
     * row), the score row written by gemm_scores, read twice and written once by softmax_rows, read by gemm_values once
     * per column tile of the head dimension, the partial outputs written and read, the query read once per key tile
     * and the output written.
     */
    public static long gemmAttentionPerQuery(int n, int d, int batch) {
        long f = Float.BYTES;
        long rowTiles = (batch + PtxFunction.GEMM_TILE - 1) / PtxFunction.GEMM_TILE;
        long colTiles = (d + PtxFunction.GEMM_TILE - 1) / PtxFunction.GEMM_TILE;
        long keyTiles = (n + PtxFunction.GEMM_TILE - 1) / PtxFunction.GEMM_TILE;
        long splits = (n + CudaContextDecoder.GEMM_SPLIT_KEYS - 1) / CudaContextDecoder.GEMM_SPLIT_KEYS;
        long sharedReads = rowTiles * fullAttentionPerQuery(n, d);
        long perQuery = f * n * (1 + 3 + colTiles) + 2 * f * splits * d + f * keyTiles * d + f + f * d;
        return (sharedReads + batch / 2) / batch + perQuery;
    }

    /** Bytes per query of full attention reading every K and V row itself (flash-decoding: K/V streamed once). */
    public static long fullAttentionPerQuery(int n, int d) {
        return 2L * Float.BYTES * n * d;
    }
}
