/**
 * The Llama-family model runtime, free of Spark: loaders ({@link io.csattention.model.ModelFiles} dispatches to
 * {@link io.csattention.model.GgufModel} for GGUF v2/v3 and {@link io.csattention.model.Llama2cCheckpoint} for
 * llama2.c {@code .bin} files; weights stay memory-mapped in {@link io.csattention.model.WeightMatrix}), tokenizers
 * ({@link io.csattention.model.Tokenizer}), the forward pass ({@link io.csattention.model.LlamaModel} for the
 * sequence-independent pieces, {@link io.csattention.model.Session} for one sequence's KV caches, blocked prefill and
 * decode with a pluggable {@link io.csattention.baseline.AttentionMethod}), sampling
 * ({@link io.csattention.model.Sampler}) and the accuracy protocol of {@code eval-model}
 * ({@link io.csattention.model.ModelEvaluation}).
 *
 * <p>Conventions: weight matrices are [out, in]; a sequence's KV cache is one
 * {@link io.csattention.core.KeyValueCache} per (layer, KV head) holding RoPE-rotated keys; query head h uses KV head
 * {@code h / (heads / kvHeads)}; RoPE rotates interleaved pairs (2i, 2i+1), which GGUF {@code llama} files share
 * with llama2.c because llama.cpp's converters permute Q and K rows into that order; for {@code qwen2} files, which
 * keep the NEOX order (i, i + d/2), {@link io.csattention.model.GgufModel} reorders those rows when it loads them.
 */
package io.csattention.model;
