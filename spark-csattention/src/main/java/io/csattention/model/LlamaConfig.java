package io.csattention.model;

import io.csattention.core.Check;

/**
 * The shape of a Llama-family model.
 *
 * @param dim            model (embedding) width
 * @param hiddenDim      SwiGLU feed-forward width
 * @param layers         transformer blocks
 * @param heads          query heads
 * @param kvHeads        key/value heads (grouped-query attention: {@code heads / kvHeads} query heads share one)
 * @param vocabSize      tokens
 * @param contextLength  the longest sequence the model was trained for; longer contexts are refused
 * @param ropeBase       RoPE frequency base (theta)
 * @param ropeDim        leading dimensions of each head that RoPE rotates (the head size for Llama)
 * @param normEps        RMSNorm epsilon
 */
public record LlamaConfig(int dim, int hiddenDim, int layers, int heads, int kvHeads, int vocabSize,
                          int contextLength, float ropeBase, int ropeDim, float normEps) {

    public LlamaConfig {
        Check.positive(dim, "dim");
        Check.positive(hiddenDim, "hidden_dim");
        Check.positive(layers, "layers");
        Check.positive(heads, "heads");
        Check.positive(kvHeads, "kv_heads");
        Check.positive(vocabSize, "vocab_size");
        Check.positive(contextLength, "context_length");
        Check.that(dim % heads == 0, "dim must be a multiple of heads=" + heads, "dim", dim);
        Check.that(heads % kvHeads == 0, "heads must be a multiple of kv_heads=" + kvHeads, "heads", heads);
        Check.that(ropeDim > 0 && ropeDim <= dim / heads && ropeDim % 2 == 0,
                "rope dimension must be even and in (0, head size " + dim / heads + "]", "rope_dim", ropeDim);
    }

    public int headSize() {
        return dim / heads;
    }

    public int kvDim() {
        return kvHeads * headSize();
    }

    /** Query heads per KV head. */
    public int groupSize() {
        return heads / kvHeads;
    }
}
