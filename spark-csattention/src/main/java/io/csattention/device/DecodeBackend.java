package io.csattention.device;

import io.csattention.core.CSAttentionIndex;
import io.csattention.core.CSAttentionSelector;
import io.csattention.core.CSAttentionSettings;
import io.csattention.core.FloatMatrix;
import io.csattention.core.KeyValueCache;

/**
 * Where the heavy steps of CSAttention run: the index build of one KV head and the decode of blocks of queries
 * against one context. The CPU implementation ({@link CpuDecodeBackend}) delegates to {@code io.csattention.core}
 * and is the reference; the GPU implementation ({@code io.csattention.device.cuda.CudaDecodeBackend}) runs the
 * CUDA kernels of {@code kernels/} and must agree with it (contract tests run the same cases against both). Chosen
 * once per JVM by {@link Backends#select}.
 *
 * <p>Implementations are thread-safe.
 */
public interface DecodeBackend {

    /** For logs and reports: {@code cpu (simd)}, {@code gpu 0: NVIDIA H200}. */
    String name();

    /** True for a GPU backend. */
    boolean isGpu();

    /**
     * The index of one KV head from its keys [N, d] and the prefill queries [N_p, d] of every query head that shares
     * it; same contract as {@link CSAttentionIndex#build}.
     */
    CSAttentionIndex buildIndex(FloatMatrix keys, FloatMatrix prefillQueries, CSAttentionSettings settings);

    /**
     * A decoder that keeps one context (its keys and values, and its index) resident for many blocks of queries.
     * {@code index} may be null when only full attention is wanted; otherwise it must cover exactly the cache's keys
     * (keys streamed in after the build are decoded by {@code CSAttentionSelector}, not here). Close it to release
     * what it holds (device memory on a GPU).
     */
    ContextDecoder open(KeyValueCache cache, CSAttentionIndex index, CSAttentionSettings settings);

    /**
     * {@link #open} from what a CPU selector of the context already holds (its index without the build-form lists, its
     * packed lists and key sketch, made with {@code settings}' re-score factor), so that a context kept for the CPU
     * decode is opened here without its lists being packed again (the Spark executors' cache keeps only that form).
     */
    ContextDecoder openFromSelector(KeyValueCache cache, CSAttentionSelector selector, CSAttentionSettings settings);

    /**
     * Why {@link #open} would refuse {@code index} on this backend (one line ending with the value), or null when it
     * takes it. Callers that can decode elsewhere ask first, so that a refused index is a fallback and not an error.
     */
    default String refusal(CSAttentionIndex index) {
        return null;
    }
}
