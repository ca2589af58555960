package io.csattention.device.cuda;

import java.util.Arrays;
import java.util.List;

/** Every CUDA entry point (PTX function) of {@code kernels/src}, with the PTX module (the .cu file) that holds it. */
enum PtxFunction {
    KMEANS_ASSIGN("prefill", "kmeans_assign"),
    KMEANS_UPDATE("prefill", "kmeans_update"),
    CENTROID_KEY_SCORES("prefill", "centroid_key_scores"),
    BUILD_LISTS("prefill", "build_lists"),
    NEAREST_CENTROIDS("decode", "nearest_centroids"),
    ACCUMULATE_LISTS("decode", "accumulate_lists"),
    TOP_K_SUMS("decode", "top_k_sums"),
    TOP_K_ROWS("decode", "top_k_rows"),
    RESCORE_CODES("decode", "rescore_codes"),
    SINK_AND_WINDOW("decode", "sink_and_window"),
    ATTEND_PARTIAL("attention", "attend_partial"),
    ATTEND_ALL_TILED("attention", "attend_all_tiled"),
    ATTEND_COMBINE("attention", "attend_combine"),
    GEMM_SCORES("attention", "gemm_scores"),
    SOFTMAX_ROWS("attention", "softmax_rows"),
    GEMM_VALUES("attention", "gemm_values"),
    GEMM_SUM_SPLITS("attention", "gemm_sum_splits"),
    LINEAR("forward", "linear"),
    RMS_NORM("forward", "rms_norm"),
    ROPE_ROWS("forward", "rope_rows"),
    SILU_GATE("forward", "silu_gate"),
    ATTEND_CAUSAL("forward", "attend_causal");

    /** Centroids per tile of {@code centroid_key_scores} (CENTROID_TILE in prefill.cu). */
    static final int CENTROID_TILE = 32;

    /** Bits of a key's offset within its block in {@code accumulate_lists} (its {@code << 16}); PackedLists' blocks. */
    static final int PACKED_BLOCK_BITS = 16;

    /** Rows and columns of the output tile of one thread block of the GEMM kernels (CSA_GEMM_TILE in gemm.cuh). */
    static final int GEMM_TILE = 64;

    /** Queries per thread block of {@code attend_causal} (FLASH_QUERIES in forward.cu). */
    static final int FLASH_QUERIES = 16;

    /** Keys per tile of {@code attend_causal} (FLASH_KEYS in forward.cu). */
    static final int FLASH_KEYS = 32;

    /** The largest head size {@code attend_causal} takes (FLASH_MAX_HEAD in forward.cu). */
    static final int FLASH_MAX_HEAD = 128;

    /** Queries per thread block of {@code attend_all_tiled} (ATTEND_QUERY_TILE in attention.cu). */
    static final int QUERY_TILE = 8;

    private final String module;
    private final String function;

    PtxFunction(String module, String function) {
        this.module = module;
        this.function = function;
    }

    String module() {
        return module;
    }

    String function() {
        return function;
    }

    static List<String> functionsOf(String module) {
        return Arrays.stream(values()).filter(k -> k.module.equals(module)).map(PtxFunction::function).toList();
    }
}
