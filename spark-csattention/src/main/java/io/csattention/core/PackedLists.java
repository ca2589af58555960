package io.csattention.core;

import java.util.stream.IntStream;

/**
 * The decode form of an index's lists: 3 bytes per entry instead of 8, laid out so that summing the chosen lists
 * walks the accumulator forwards.
 *
 * <ul>
 *   <li>Keys are cut into blocks of 65,536; within a list, the entries of each block are stored by ascending key, as
 *       the key's offset in its block (a {@code char}). {@code starts[list * blocks + b]} is where block b of the list
 *       begins.</li>
 *   <li>A score is stored as what it adds over the list's estimate for absent keys, {@code score - missing}, in
 *       signed units of {@link #unit()} (a {@code byte}, -127..127). One unit serves the whole index, so units of
 *       different lists add up exactly as integers; it is the largest such difference over 127.</li>
 * </ul>
 *
 * Rounding moves a sum by at most m/2 units: the exact re-scoring that follows the sum decides between keys that
 * close. Scores above the largest representable difference saturate (they are far above any threshold).
 *
 * <p>Public for the GPU decoder ({@code io.csattention.device.cuda}), which uploads this layout as it is, so that both
 * decoders sum the same integers.
 */
public final class PackedLists {

    public static final int BLOCK_BITS = 16;
    static final int UNIT_MAX = 127;

    private final int blocks;
    private final int[] starts;
    private final char[] offsets;
    private final byte[] units;
    private final float unit;

    private PackedLists(int blocks, int[] starts, char[] offsets, byte[] units, float unit) {
        this.blocks = blocks;
        this.starts = starts;
        this.offsets = offsets;
        this.units = units;
        this.unit = unit;
    }

    public static PackedLists of(CSAttentionIndex index) {
        Check.that(!index.listsDropped(), "the index's lists were dropped: pack them before", "lists.length", 0);
        int lists = index.subspaces() * index.centroidCount();
        int length = index.listLength();
        int blocks = Math.max(1, (index.keys() + (1 << BLOCK_BITS) - 1) >>> BLOCK_BITS);
        int[] ids = index.listIds();
        float[] scores = index.listScores();
        float[] missing = index.missing();
        float largest = 0f;
        for (int list = 0; list < lists; list++) {
            for (int r = 0; r < length; r++) {
                largest = Math.max(largest, Math.abs(scores[list * length + r] - missing[list]));
            }
        }
        float unit = largest > 0f ? largest / UNIT_MAX : 1f;
        int[] starts = new int[lists * blocks + 1];
        char[] offsets = new char[lists * length];
        byte[] units = new byte[lists * length];
        IntStream.range(0, lists).parallel().forEach(list -> {
            long[] entries = new long[length];
            for (int r = 0; r < length; r++) {
                int at = list * length + r;
                entries[r] = ((long) ids[at] << 8) | (toUnits(scores[at] - missing[list], unit) & 0xff);
            }
            java.util.Arrays.sort(entries);
            int[] perBlock = new int[blocks];
            for (int r = 0; r < length; r++) {
                int id = (int) (entries[r] >>> 8);
                offsets[list * length + r] = (char) (id & ((1 << BLOCK_BITS) - 1));
                units[list * length + r] = (byte) entries[r];
                perBlock[id >>> BLOCK_BITS]++;
            }
            int at = list * length;
            for (int b = 0; b < blocks; b++) {
                starts[list * blocks + b] = at;
                at += perBlock[b];
            }
        });
        starts[lists * blocks] = lists * length;
        return new PackedLists(blocks, starts, offsets, units, unit);
    }

    /** A score difference in whole units, rounded and saturated to the byte range. */
    static int toUnits(float difference, float unit) {
        return Math.max(-UNIT_MAX, Math.min(UNIT_MAX, Math.round(difference / unit)));
    }

    /** Blocks of {@code 1 << BLOCK_BITS} keys. */
    public int blocks() {
        return blocks;
    }

    /**
     * [lists * blocks + 1]: entry {@code list * blocks + b} is where block b of the list starts ({@link #start}); the
     * entries of a list are {@code [list * L, (list + 1) * L)}.
     */
    public int[] starts() {
        return starts;
    }

    /** Where block {@code block} of list {@code list} starts; it ends where the next block starts. */
    int start(int list, int block) {
        return starts[list * blocks + block];
    }

    /** Per entry, its key's offset within its block. */
    public char[] offsets() {
        return offsets;
    }

    /** Per entry, {@code score - missing} in units. */
    public byte[] units() {
        return units;
    }

    /** The score difference one unit stands for. */
    float unit() {
        return unit;
    }

    /** 3 bytes per entry and 4 per block start. */
    long bytes() {
        return 3L * offsets.length + 4L * starts.length;
    }
}
