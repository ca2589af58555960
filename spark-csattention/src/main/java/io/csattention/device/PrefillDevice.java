package io.csattention.device;

/**
 * A model prefill on an accelerator: one context's tokens through the model there, the last token's logits back, and
 * per layer the rows it produced, so that a CPU {@code Session} can load them and go on decoding
 * ({@code io.csattention.model.DevicePrefill}). {@link Backends#prefillDevice} opens one; {@code
 * io.csattention.device.cuda.GpuModelForward} is the CUDA one. One instance holds one sequence from position 0.
 */
public interface PrefillDevice extends AutoCloseable {

    /**
     * The rows one layer produced for positions [0, tokens), position-major as the CPU forward pass lays them out:
     * {@code keys} and {@code values} [tokens, kvDim], where KV head g's row of token t starts at
     * {@code t * kvDim + g * headSize} (keys rotated), and {@code queries} [tokens, dim], the rotated queries of every
     * query head (head h of token t at {@code t * dim + h * headSize}), which the index build takes.
     */
    record LayerRows(int tokens, float[] keys, float[] values, float[] queries) {
    }

    /**
     * Runs {@code tokens} through the model after the context so far and returns the logits [vocab] of the last one.
     */
    float[] prefill(int[] tokens);

    /** Tokens in the context so far. */
    int position();

    /** The rows of {@code layer} for positions [0, {@link #position}), copied to the host. */
    LayerRows layerRows(int layer);

    /** Frees the device memory; the rows already copied stay valid. */
    @Override
    void close();
}
