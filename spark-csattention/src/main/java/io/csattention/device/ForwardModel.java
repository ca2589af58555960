package io.csattention.device;

/**
 * What a device forward pass needs of a Llama-family model: its shape, its weights as rows decoded to floats, its RoPE
 * frequencies. An interface here, not {@code io.csattention.model}'s classes, because the device packages must not
 * depend on the model package (which depends on them through the evaluation code);
 * {@code io.csattention.model.LlamaForwardModel} adapts a {@code LlamaModel}.
 */
public interface ForwardModel {

    /** A weight matrix [rows, cols] whose rows decode to floats (any stored type). */
    interface Matrix {
        int rows();

        int cols();

        /** Decodes row {@code r} into {@code dst[off .. off + cols)}. */
        void row(int r, float[] dst, int off);
    }

    /** One transformer block; biases are null when the model has none (Llama), present for Qwen2. */
    record Layer(float[] attentionNorm, Matrix wq, Matrix wk, Matrix wv, Matrix wo, float[] qBias, float[] kBias,
                 float[] vBias, float[] ffnNorm, Matrix gate, Matrix up, Matrix down) {
    }

    int dim();

    int hiddenDim();

    int layers();

    int heads();

    int kvHeads();

    int vocabSize();

    int contextLength();

    /** Leading dimensions of each head that RoPE rotates, in interleaved pairs. */
    int ropeDim();

    float normEps();

    /** The rotation frequency of each pair, [ropeDim / 2]. */
    float[] ropeFrequencies();

    Layer layer(int index);

    float[] finalNorm();

    /** [vocab, dim]. */
    Matrix classifier();

    /** [vocab, dim]. */
    Matrix tokenEmbedding();

    default int headSize() {
        return dim() / heads();
    }

    default int kvDim() {
        return kvHeads() * headSize();
    }

    default int groupSize() {
        return heads() / kvHeads();
    }
}
