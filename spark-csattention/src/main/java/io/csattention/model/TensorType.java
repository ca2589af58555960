package io.csattention.model;

/**
 * The ggml tensor types this runtime reads, with their GGUF type ids and block layouts. A block holds
 * {@link #blockSize()} elements in {@link #blockBytes()} bytes, little-endian.
 */
public enum TensorType {
    /** 4-byte IEEE floats. */
    F32(0, 1, 4),
    /** 2-byte IEEE binary16. */
    F16(1, 1, 2),
    /** Blocks of 32: fp16 scale d, then 16 bytes of nibbles; element j = (nibble - 8) * d, low nibbles first. */
    Q4_0(2, 32, 18),
    /** Blocks of 32: fp16 scale d, fp16 minimum m, 16 bytes of nibbles; element = nibble * d + m. */
    Q4_1(3, 32, 20),
    /**
     * Blocks of 32: fp16 scale d, 4 bytes of fifth bits (bit j of element j), 16 bytes of nibbles; element =
     * (5-bit code - 16) * d.
     */
    Q5_0(6, 32, 22),
    /** Blocks of 32: fp16 d, fp16 m, 4 bytes of fifth bits, 16 bytes of nibbles; element = 5-bit code * d + m. */
    Q5_1(7, 32, 24),
    /** Blocks of 32: fp16 scale d, then 32 signed bytes q; element j = q[j] * d. */
    Q8_0(8, 32, 34),
    /**
     * Blocks of 256: fp16 d, fp16 dmin, 12 bytes of 6-bit scales and mins for 8 sub-blocks of 32, 128 bytes of
     * nibbles; element = d * scale_j * nibble - dmin * min_j (ggml's {@code dequantize_row_q4_K}).
     */
    Q4_K(12, 256, 144),
    /**
     * Blocks of 256: fp16 d, fp16 dmin, 12 bytes of 6-bit scales and mins (as Q4_K), 32 bytes of fifth bits, 128
     * bytes of nibbles; element = d * scale_j * 5-bit code - dmin * min_j (ggml's {@code dequantize_row_q5_K}).
     */
    Q5_K(13, 256, 176),
    /**
     * Blocks of 256: 128 bytes of low nibbles, 64 bytes of high 2-bit pairs, 16 int8 scales (one per 16 elements),
     * fp16 d; element = d * scale * (6-bit code - 32) (ggml's {@code dequantize_row_q6_K}).
     */
    Q6_K(14, 256, 210),
    /** 2-byte bfloat16 (the top half of a float32). */
    BF16(30, 1, 2);

    /** ggml's names of every type id up to 39, for error messages about types this runtime does not read. */
    private static final String[] GGML_NAMES = {
        "F32", "F16", "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K",
        "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16",
        "I32", "I64", "F64", "IQ1_M", "BF16", "Q4_0_4_4", "Q4_0_4_8", "Q4_0_8_8", "TQ1_0", "TQ2_0", "IQ4_NL_4_4",
        "IQ4_NL_4_8", "IQ4_NL_8_8", "MXFP4"
    };

    private final int ggmlId;
    private final int blockSize;
    private final int blockBytes;

    TensorType(int ggmlId, int blockSize, int blockBytes) {
        this.ggmlId = ggmlId;
        this.blockSize = blockSize;
        this.blockBytes = blockBytes;
    }

    public int ggmlId() {
        return ggmlId;
    }

    public int blockSize() {
        return blockSize;
    }

    public int blockBytes() {
        return blockBytes;
    }

    /** Bytes of {@code elements} elements ({@code elements} a multiple of the block size). */
    public long bytes(long elements) {
        return elements / blockSize * blockBytes;
    }

    /** The names of the types this runtime reads, in GGUF id order. */
    static String supported() {
        return String.join(", ", java.util.Arrays.stream(values()).map(Enum::name).toList());
    }

    /** The type of a GGUF type id, or an error naming the unsupported type and the tensor. */
    public static TensorType ofGgmlId(int id, String tensor) {
        for (TensorType type : values()) {
            if (type.ggmlId == id) {
                return type;
            }
        }
        String name = id >= 0 && id < GGML_NAMES.length ? GGML_NAMES[id] : "unknown type id " + id;
        throw new IllegalArgumentException("tensor type must be one of " + supported() + "; " + tensor
                + ".type=" + name);
    }
}
