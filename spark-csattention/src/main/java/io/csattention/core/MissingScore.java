package io.csattention.core;

/** What a key that is absent from a chosen centroid's list contributes to its accumulated score. */
public enum MissingScore {
    /** The list's floor: its smallest kept partial score, an upper bound of the absent key's true partial score. */
    FLOOR,
    /** The mean partial score of the keys below the floor, computed at build time. */
    MEAN_BELOW_FLOOR,
    /** Nothing. */
    ZERO
}
