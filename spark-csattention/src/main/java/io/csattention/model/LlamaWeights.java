package io.csattention.model;

import java.util.List;

/**
 * Every weight of a Llama-family model. Matrices are [out, in] (a row per output feature), as in llama2.c and
 * GGUF; Q and K are stored for the interleaved RoPE convention (see {@link LlamaModel}).
 *
 * @param tokenEmbedding [vocab, dim]
 * @param layers         the transformer blocks
 * @param finalNorm      [dim]
 * @param classifier     [vocab, dim]; the same matrix as {@code tokenEmbedding} when the model ties them
 * @param ropeDivisors   [ropeDim / 2] divisors of each RoPE pair's frequency (GGUF {@code rope_freqs.weight} of
 *                       Llama 3.1+, times a linear scaling factor), or null for plain RoPE
 */
public record LlamaWeights(WeightMatrix tokenEmbedding, List<Layer> layers, float[] finalNorm,
                           WeightMatrix classifier, float[] ropeDivisors) {

    /**
     * One transformer block.
     *
     * @param attentionNorm [dim]
     * @param wq            [dim, dim]
     * @param wk            [kvDim, dim]
     * @param wv            [kvDim, dim]
     * @param wo            [dim, dim]
     * @param ffnNorm       [dim]
     * @param gate          w1 [hidden, dim]
     * @param down          w2 [dim, hidden]
     * @param up            w3 [hidden, dim]
     * @param qBias         [dim] added to the queries (Qwen2), or null
     * @param kBias         [kvDim] added to the keys, or null
     * @param vBias         [kvDim] added to the values, or null
     */
    public record Layer(float[] attentionNorm, WeightMatrix wq, WeightMatrix wk, WeightMatrix wv, WeightMatrix wo,
                        float[] ffnNorm, WeightMatrix gate, WeightMatrix down, WeightMatrix up, float[] qBias,
                        float[] kBias, float[] vBias) {

        /** A block without Q, K and V biases (Llama). */
        public Layer(float[] attentionNorm, WeightMatrix wq, WeightMatrix wk, WeightMatrix wv, WeightMatrix wo,
                     float[] ffnNorm, WeightMatrix gate, WeightMatrix down, WeightMatrix up) {
            this(attentionNorm, wq, wk, wv, wo, ffnNorm, gate, down, up, null, null, null);
        }
    }
}
