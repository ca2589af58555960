package io.csattention.core;

import java.io.Serializable;

/**
 * What the index needs to know about the rotary embedding already applied to a head's keys and queries, so that it
 * can treat each frequency band on its own terms.
 *
 * <p>Under RoPE, a content match between a query at position p and a key at position i shows up only after rotating
 * by {@code (p - i) * theta} per pair. Clustering rotated prefill queries therefore has to cover every (content,
 * angle) pair, which a few hundred centroids cannot do for the bands that turn many times over a long context. For
 * such slowly turning bands (turning at most {@code maxDriftRadians} over {@code decodeSpan} positions) the index
 * clusters the de-rotated, position-free prefill queries and scores keys with the centroids rotated to
 * {@code referencePosition}, the first decode position; a decode query is de-rotated before its lookup. Fast bands,
 * whose angle changes a lot within the decode span, stay as they are.
 *
 * @param base               RoPE base (theta_p = base^(-2p/d))
 * @param style              pairing of the dimensions
 * @param prefillPositions   position of each prefill query row
 * @param referencePosition  position the position-free lists are built for (usually the context length)
 * @param decodeSpan         positions after the reference the lists must stay valid for
 * @param pairFrequencies    the model's own per-pair frequencies (scaled RoPE, partial rotary dimensions), or null
 *                           for {@code base^(-2p/d)}; pairs beyond its length do not rotate
 */
public record RopeInfo(double base, Rope.Style style, long[] prefillPositions, long referencePosition,
                       int decodeSpan, float[] pairFrequencies) implements Serializable {

    public static final int DEFAULT_DECODE_SPAN = 256;
    /** A band counts as slow when its fastest pair turns at most this much over the decode span. */
    public static final double MAX_DRIFT_RADIANS = 0.5;

    public RopeInfo(double base, Rope.Style style, long[] prefillPositions, long referencePosition, int decodeSpan) {
        this(base, style, prefillPositions, referencePosition, decodeSpan, null);
    }

    public RopeInfo {
        Check.that(base > 1, "rope-base must be > 1", "rope-base", base);
        java.util.Objects.requireNonNull(style, "style");
        java.util.Objects.requireNonNull(prefillPositions, "prefillPositions");
        Check.positive(decodeSpan, "decode-span");
    }

    /** The angular frequency of pair {@code pair} for head dimension {@code d}. */
    public double theta(int pair, int d) {
        if (pairFrequencies != null) {
            return pair < pairFrequencies.length ? pairFrequencies[pair] : 0;
        }
        return Math.pow(base, -2.0 * pair / d);
    }

    /**
     * Index of dimension {@code i} of the pair-contiguous layout in the original layout: pairs become (2p, 2p+1)
     * so that a contiguous subspace holds whole pairs, a band of neighbouring frequencies.
     */
    public int sourceDimension(int i, int d) {
        if (style == Rope.Style.INTERLEAVED) {
            return i;
        }
        int pair = i / 2;
        return i % 2 == 0 ? pair : pair + d / 2;
    }
}
