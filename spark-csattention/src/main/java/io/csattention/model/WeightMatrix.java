package io.csattention.model;

import io.csattention.format.Half;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;

/**
 * A weight matrix [rows, cols] stored row-major in one of the {@link TensorType}s, usually a memory-mapped slice of
 * the model file. Rows are decoded to float32 on demand ({@link #row}), so quantized weights stay quantized in
 * memory; a matrix-matrix product decodes each row once per block of tokens. Thread-safe: reads use absolute
 * positions only.
 *
 * <p>A matrix may span several buffers (segments), each holding {@link #rowsPerSegment} whole rows (the last one the
 * rest): a memory mapping holds less than 2 GiB, and a tensor of any size is mapped as consecutive segments (see
 * {@link GgufFile#matrix}); row r lies in segment r / rowsPerSegment at row r % rowsPerSegment. A matrix may also
 * read its rows in another order ({@link #withRowOrder}), without copying.
 */
public final class WeightMatrix {

    private final String name;
    private final TensorType type;
    private final int rows;
    private final int cols;
    private final int rowsPerSegment;
    private final ByteBuffer[] segments;
    private final FloatBuffer[] floats;
    /** The stored row that row r reads, or null for r itself. */
    private final int[] rowOrder;

    private WeightMatrix(String name, TensorType type, int rows, int cols, ByteBuffer[] segments, int rowsPerSegment,
                         int[] rowOrder) {
        this.name = name;
        this.type = type;
        this.rows = rows;
        this.cols = cols;
        this.rowsPerSegment = rowsPerSegment;
        this.rowOrder = rowOrder;
        if (type.blockSize() > 1 && cols % type.blockSize() != 0) {
            throw new IllegalArgumentException(name + " row length must be a multiple of " + type.blockSize()
                    + " for " + type + "; " + name + ".cols=" + cols);
        }
        if (rowsPerSegment <= 0 || (long) rowsPerSegment * segments.length < rows) {
            throw new IllegalArgumentException(name + " segments must hold " + rows + " rows; " + name
                    + ".segments=" + segments.length + " of " + rowsPerSegment + " rows");
        }
        this.segments = new ByteBuffer[segments.length];
        this.floats = new FloatBuffer[segments.length];
        long rowBytes = type.bytes(cols);
        for (int i = 0; i < segments.length; i++) {
            long segmentRows = Math.min(rowsPerSegment, rows - (long) i * rowsPerSegment);
            long need = segmentRows * rowBytes;
            if (segments[i].remaining() < need || need > Integer.MAX_VALUE) {
                throw new IllegalArgumentException(name + " must hold " + need + " bytes in segment " + i + "; "
                        + name + ".bytes=" + segments[i].remaining());
            }
            this.segments[i] = segments[i].slice().order(ByteOrder.LITTLE_ENDIAN);
            this.floats[i] = type == TensorType.F32 ? this.segments[i].asFloatBuffer() : null;
        }
    }

    /** A matrix over {@code bytes} (from its position, little-endian). */
    public static WeightMatrix of(String name, TensorType type, int rows, int cols, ByteBuffer bytes) {
        return new WeightMatrix(name, type, rows, cols, new ByteBuffer[] {bytes}, Math.max(rows, 1), null);
    }

    /**
     * A matrix over consecutive segments of whole rows: {@code segments[i]} holds rows [i * rowsPerSegment,
     * min(rows, (i + 1) * rowsPerSegment)), each from its position, little-endian.
     */
    public static WeightMatrix ofSegments(String name, TensorType type, int rows, int cols, int rowsPerSegment,
                                          ByteBuffer... segments) {
        return new WeightMatrix(name, type, rows, cols, segments.clone(), rowsPerSegment, null);
    }

    /** A float32 matrix over a heap array (tests and small tensors). */
    public static WeightMatrix ofFloats(String name, int rows, int cols, float[] data) {
        ByteBuffer buffer = ByteBuffer.allocate(rows * cols * 4).order(ByteOrder.LITTLE_ENDIAN);
        buffer.asFloatBuffer().put(data, 0, rows * cols);
        return of(name, TensorType.F32, rows, cols, buffer);
    }

    /** The same rows read in another order: row r of the result is row {@code order[r]} of this matrix. */
    public WeightMatrix withRowOrder(int[] order) {
        if (order.length != rows) {
            throw new IllegalArgumentException(name + " row order must have " + rows + " entries; entries="
                    + order.length);
        }
        int[] stored = new int[rows];
        for (int r = 0; r < rows; r++) {
            if (order[r] < 0 || order[r] >= rows) {
                throw new IllegalArgumentException(name + " row order entries must be in [0, " + rows + "); order["
                        + r + "]=" + order[r]);
            }
            stored[r] = rowOrder == null ? order[r] : rowOrder[order[r]];
        }
        return new WeightMatrix(name, type, rows, cols, segments, rowsPerSegment, stored);
    }

    /** Rows per segment (the row count when the matrix is one buffer). */
    public int rowsPerSegment() {
        return rowsPerSegment;
    }

    public String name() {
        return name;
    }

    public TensorType type() {
        return type;
    }

    public int rows() {
        return rows;
    }

    public int cols() {
        return cols;
    }

    /**
     * The first weight that is not finite, as {@code name[row,col]=value}, or empty: every row decoded once, so a
     * cost of one pass over the matrix (what a forward pass reads anyway).
     */
    public java.util.Optional<String> firstNonFinite() {
        float[] row = new float[cols];
        for (int r = 0; r < rows; r++) {
            row(r, row);
            for (int c = 0; c < cols; c++) {
                if (!Float.isFinite(row[c])) {
                    return java.util.Optional.of(name + "[" + r + "," + c + "]=" + row[c]);
                }
            }
        }
        return java.util.Optional.empty();
    }

    /** Decodes row {@code r} into {@code dst[0 .. cols)}. */
    public void row(int r, float[] dst) {
        row(r, dst, 0);
    }

    /** Decodes row {@code r} into {@code dst[off .. off + cols)}. */
    public void row(int r, float[] dst, int off) {
        int stored = rowOrder == null ? r : rowOrder[r];
        int segment = stored / rowsPerSegment;
        int local = stored - segment * rowsPerSegment;
        ByteBuffer bytes = segments[segment];
        switch (type) {
            case F32 -> floats[segment].get(local * cols, dst, off, cols);
            case F16 -> {
                int base = local * cols * 2;
                for (int j = 0; j < cols; j++) {
                    dst[off + j] = Half.toFloat(bytes.getShort(base + 2 * j));
                }
            }
            case BF16 -> {
                int base = local * cols * 2;
                for (int j = 0; j < cols; j++) {
                    dst[off + j] = Half.bfloat16ToFloat(bytes.getShort(base + 2 * j));
                }
            }
            case Q8_0 -> {
                int blocks = cols / 32;
                int base = local * blocks * 34;
                for (int b = 0; b < blocks; b++) {
                    int at = base + b * 34;
                    float d = Half.toFloat(bytes.getShort(at));
                    for (int j = 0; j < 32; j++) {
                        dst[off + b * 32 + j] = bytes.get(at + 2 + j) * d;
                    }
                }
            }
            case Q4_0 -> {
                int blocks = cols / 32;
                int base = local * blocks * 18;
                for (int b = 0; b < blocks; b++) {
                    int at = base + b * 18;
                    float d = Half.toFloat(bytes.getShort(at));
                    for (int j = 0; j < 16; j++) {
                        int packed = bytes.get(at + 2 + j) & 0xFF;
                        dst[off + b * 32 + j] = ((packed & 0x0F) - 8) * d;
                        dst[off + b * 32 + j + 16] = ((packed >>> 4) - 8) * d;
                    }
                }
            }
            case Q4_1, Q5_0, Q5_1 -> {
                int blocks = cols / 32;
                for (int b = 0; b < blocks; b++) {
                    decodeSmall(bytes, (local * blocks + b) * type.blockBytes(), dst, off + b * 32);
                }
            }
            case Q5_K -> {
                int blocks = cols / 256;
                for (int b = 0; b < blocks; b++) {
                    decodeQ5K(bytes, (local * blocks + b) * 176, dst, off + b * 256);
                }
            }
            case Q4_K -> {
                int blocks = cols / 256;
                for (int b = 0; b < blocks; b++) {
                    decodeQ4K(bytes, (local * blocks + b) * 144, dst, off + b * 256);
                }
            }
            case Q6_K -> {
                int blocks = cols / 256;
                for (int b = 0; b < blocks; b++) {
                    decodeQ6K(bytes, (local * blocks + b) * 210, dst, off + b * 256);
                }
            }
        }
    }

    private static void decodeQ4K(ByteBuffer bytes, int at, float[] dst, int off) {
        decodeK(bytes, at, -1, at + 16, dst, off);
    }

    private static void decodeQ5K(ByteBuffer bytes, int at, float[] dst, int off) {
        decodeK(bytes, at, at + 16, at + 48, dst, off);
    }

    /**
     * One block of 256 of Q4_K ({@code qh < 0}) or Q5_K (fifth bits at {@code qh}): fp16 d and dmin, the 6-bit scales
     * and mins of 8 sub-blocks of 32, the nibbles at {@code qs} (ggml's {@code dequantize_row_q4_K/q5_K}).
     */
    private static void decodeK(ByteBuffer bytes, int at, int qh, int qs, float[] dst, int off) {
        float d = Half.toFloat(bytes.getShort(at));
        float dmin = Half.toFloat(bytes.getShort(at + 2));
        int scales = at + 4;
        for (int chunk = 0; chunk < 4; chunk++) {
            int sub = 2 * chunk;
            float d1 = d * scaleK4(bytes, scales, sub);
            float m1 = dmin * minK4(bytes, scales, sub);
            float d2 = d * scaleK4(bytes, scales, sub + 1);
            float m2 = dmin * minK4(bytes, scales, sub + 1);
            int low = 1 << (2 * chunk);
            int high = 2 << (2 * chunk);
            int q = qs + 32 * chunk;
            int y = off + 64 * chunk;
            for (int l = 0; l < 32; l++) {
                int packed = u8(bytes, q + l);
                int h = qh < 0 ? 0 : u8(bytes, qh + l);
                dst[y + l] = d1 * ((packed & 0x0F) + ((h & low) != 0 ? 16 : 0)) - m1;
                dst[y + 32 + l] = d2 * ((packed >>> 4) + ((h & high) != 0 ? 16 : 0)) - m2;
            }
        }
    }

    /**
     * One block of 32 of Q4_1, Q5_0 or Q5_1 (ggml's {@code dequantize_row_q4_1/q5_0/q5_1}): element j takes the low
     * nibble of byte j, element j + 16 the high one; the 5-bit types add bit j (j + 16) of their 32-bit {@code qh}.
     */
    private void decodeSmall(ByteBuffer bytes, int at, float[] dst, int off) {
        float d = Half.toFloat(bytes.getShort(at));
        boolean withMin = type != TensorType.Q5_0;
        float m = withMin ? Half.toFloat(bytes.getShort(at + 2)) : 0f;
        boolean fifthBit = type != TensorType.Q4_1;
        int qh = fifthBit ? bytes.getInt(at + (withMin ? 4 : 2)) : 0;
        int qs = at + (withMin ? 4 : 2) + (fifthBit ? 4 : 0);
        int bias = type == TensorType.Q5_0 ? 16 : 0;
        for (int j = 0; j < 16; j++) {
            int packed = u8(bytes, qs + j);
            int low = (packed & 0x0F) | (fifthBit ? ((qh >>> j) << 4) & 0x10 : 0);
            int high = (packed >>> 4) | (fifthBit ? (qh >>> (j + 12)) & 0x10 : 0);
            dst[off + j] = (low - bias) * d + m;
            dst[off + j + 16] = (high - bias) * d + m;
        }
    }

    /** The 6-bit scale of sub-block j of a Q4_K block (ggml's {@code get_scale_min_k4}). */
    private static int scaleK4(ByteBuffer bytes, int scales, int j) {
        return j < 4 ? u8(bytes, scales + j) & 63
                : (u8(bytes, scales + j + 4) & 0x0F) | ((u8(bytes, scales + j - 4) >>> 6) << 4);
    }

    private static int minK4(ByteBuffer bytes, int scales, int j) {
        return j < 4 ? u8(bytes, scales + j + 4) & 63
                : (u8(bytes, scales + j + 4) >>> 4) | ((u8(bytes, scales + j) >>> 6) << 4);
    }

    private static void decodeQ6K(ByteBuffer bytes, int at, float[] dst, int off) {
        float d = Half.toFloat(bytes.getShort(at + 208));
        for (int half = 0; half < 2; half++) {
            int ql = at + 64 * half;
            int qh = at + 128 + 32 * half;
            int sc = at + 192 + 8 * half;
            int y = off + 128 * half;
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int high = u8(bytes, qh + l);
                int q1 = ((u8(bytes, ql + l) & 0x0F) | ((high & 3) << 4)) - 32;
                int q2 = ((u8(bytes, ql + l + 32) & 0x0F) | (((high >>> 2) & 3) << 4)) - 32;
                int q3 = ((u8(bytes, ql + l) >>> 4) | (((high >>> 4) & 3) << 4)) - 32;
                int q4 = ((u8(bytes, ql + l + 32) >>> 4) | (((high >>> 6) & 3) << 4)) - 32;
                dst[y + l] = d * bytes.get(sc + is) * q1;
                dst[y + l + 32] = d * bytes.get(sc + is + 2) * q2;
                dst[y + l + 64] = d * bytes.get(sc + is + 4) * q3;
                dst[y + l + 96] = d * bytes.get(sc + is + 6) * q4;
            }
        }
    }

    private static int u8(ByteBuffer bytes, int index) {
        return bytes.get(index) & 0xFF;
    }

    /** Per-thread buffers of {@link #dot}: one row's bytes, its codes, block scales and offsets. */
    public static final class Scratch {
        private byte[] raw = new byte[0];
        private byte[] codes = new byte[0];
        private float[] scales = new float[0];
        private float[] mins = new float[0];
        private float[] floats = new float[0];
        private float[] sums = new float[0];
        /** x of {@link #dotPrepared} in the kernels' interleaved order. */
        private float[] interleaved = new float[0];
        private ByteBuffer codesBuffer = ByteBuffer.wrap(codes);
        /** The prepared row: floats (float types), code blocks in {@code source}, or blocks of 32 in {@code buffer}. */
        private boolean isFloat;
        private ByteBuffer buffer;
        private byte[] source;
        private int sourceOff;
        private int stride;
        private int block;
        private int codeBlocks;
        private boolean offsets;
        /** Whether {@code scales} holds the prepared row's scales (a Q8_0 row's are read with its codes). */
        private boolean scalesRead;

        private void fit(int rawBytes, int cols, int blocks) {
            if (raw.length < rawBytes) {
                raw = new byte[rawBytes];
            }
            if (codes.length < cols) {
                codes = new byte[cols];
                codesBuffer = ByteBuffer.wrap(codes);
                floats = new float[cols];
                interleaved = new float[cols];
            }
            if (scales.length < blocks) {
                scales = new float[blocks];
                mins = new float[blocks];
                sums = new float[blocks];
            }
        }

        private void codes(byte[] source, int sourceOff, int stride, int block, int codeBlocks, boolean offsets) {
            this.isFloat = false;
            this.buffer = null;
            this.source = source;
            this.sourceOff = sourceOff;
            this.stride = stride;
            this.block = block;
            this.codeBlocks = codeBlocks;
            this.offsets = offsets;
        }
    }

    private static float half(byte[] raw, int at) {
        return Half.toFloat((short) ((raw[at] & 0xFF) | (raw[at + 1] & 0xFF) << 8));
    }

    /**
     * Whether this matrix's products read x in the kernels' interleaved order ({@link
     * io.csattention.kernel.VectorKernels#interleave}): the types of 32-code blocks do when the kernels do.
     */
    public boolean interleavesInput(io.csattention.kernel.VectorKernels kernels) {
        return blocks32() && kernels.interleavesBlocks();
    }

    private boolean blocks32() {
        return switch (type) {
            case Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K -> true;
            default -> false;
        };
    }

    /**
     * x [tokens, cols] as this matrix's products read it ({@link #dotPreparedTokens}): interleaved when {@link
     * #interleavesInput}, else x itself. A matrix product reorders each token once.
     */
    public float[] input(float[] x, int tokens, io.csattention.kernel.VectorKernels kernels) {
        if (!interleavesInput(kernels)) {
            return x;
        }
        float[] out = new float[tokens * cols];
        for (int t = 0; t < tokens; t++) {
            kernels.interleave(x, t * cols, cols, out, t * cols);
        }
        return out;
    }

    /**
     * {@code dot(row r, x[xOff .. xOff + cols))}: {@link #prepare} then {@link #dotPrepared}. The same bits on every
     * call and thread for the same inputs.
     */
    public float dot(int r, float[] x, int xOff, io.csattention.kernel.VectorKernels kernels, Scratch s) {
        prepare(r, s, kernels);
        return dotPrepared(s, x, xOff, kernels);
    }

    /**
     * The block size whose sums of x the type's offsets multiply (Q4_1, Q5_1, Q4_K, Q5_K: 32), or 0 for types whose
     * values are a scale times a code (or floats).
     */
    public int offsetBlock() {
        return switch (type) {
            case Q4_1, Q5_1, Q4_K, Q5_K -> 32;
            default -> 0;
        };
    }

    /**
     * The sums of each token's x [tokens, cols] over the blocks of {@link #offsetBlock} elements, [tokens, cols /
     * offsetBlock], each in element order; null when the type has no offsets. A matrix product computes them once
     * per block of tokens.
     */
    public float[] blockSums(float[] x, int tokens) {
        int block = offsetBlock();
        if (block == 0) {
            return null;
        }
        float[] sums = new float[tokens * (cols / block)];
        blockSums(x, 0, tokens, block, sums);
        return sums;
    }

    private void blockSums(float[] x, int xOff, int tokens, int block, float[] sums) {
        int blocks = cols / block;
        for (int t = 0; t < tokens; t++) {
            for (int b = 0; b < blocks; b++) {
                int o = xOff + t * cols + b * block;
                float sum = x[o];
                for (int i = 1; i < block; i++) {
                    sum += x[o + i];
                }
                sums[t * blocks + b] = sum;
            }
        }
    }

    /**
     * Makes row {@code r} ready for {@link #dotPrepared} in {@code s}: the row's bytes are copied once; integer types
     * become int8 code blocks with a scale (and an offset) per block of 16 or 32 (Q8_0's codes are its bytes, read
     * in place), which the dot products multiply in vector registers without forming the dequantized row
     * ({@link io.csattention.kernel.VectorKernels#dotCodes}); float types are widened to a float row.
     */
    public void prepare(int r, Scratch s, io.csattention.kernel.VectorKernels kernels) {
        int rowBytes = (int) type.bytes(cols);
        int blocks = type.blockSize() > 1 ? cols / type.blockSize() : 0;
        s.fit(rowBytes, cols, Math.max(blocks * 16, 1));
        switch (type) {
            case F32, F16, BF16 -> {
                row(r, s.floats, 0);
                s.isFloat = true;
                return;
            }
            default -> {
            }
        }
        int stored = rowOrder == null ? r : rowOrder[r];
        int segment = stored / rowsPerSegment;
        int rowStart = (int) ((long) (stored - segment * rowsPerSegment) * rowBytes);
        ByteBuffer bytes = segments[segment];
        if (type == TensorType.Q8_0) {
            // read in place, each block's scale and codes as the dot product reaches it (scalesRead: not yet)
            s.codes(null, 0, 34, 32, blocks, false);
            s.buffer = bytes;
            s.sourceOff = rowStart + 2;
            s.scalesRead = false;
            return;
        }
        byte[] raw = s.raw;
        bytes.get(rowStart, raw, 0, rowBytes);
        switch (type) {
            case Q4_0, Q4_1, Q5_0, Q5_1 -> s.codes(s.codes, 0, 32, 32, blocks, unpackSmall(raw, blocks, s));
            case Q4_K, Q5_K -> {
                for (int b = 0; b < blocks; b++) {
                    unpackK(raw, b * type.blockBytes(), type == TensorType.Q5_K, s, b);
                }
                s.codes(s.codes, 0, 32, 32, 8 * blocks, true);
            }
            case Q6_K -> {
                for (int b = 0; b < blocks; b++) {
                    unpackQ6K(raw, b * 210, s, b);
                }
                s.codes(s.codes, 0, 16, 16, 16 * blocks, false);
            }
            default -> throw new IllegalStateException("no dot for " + type);
        }
        if (blocks32()) {
            s.buffer = s.codesBuffer;
        }
        s.scalesRead = true;
    }

    /** {@code dot(the row prepared in s, x[xOff .. xOff + cols))}. */
    public float dotPrepared(Scratch s, float[] x, int xOff, io.csattention.kernel.VectorKernels kernels) {
        if (s.isFloat) {
            return kernels.dot(s.floats, 0, x, xOff, cols);
        }
        float sum;
        if (s.buffer != null) {
            float[] xi = x;
            int xiOff = xOff;
            if (kernels.interleavesBlocks()) {
                kernels.interleave(x, xOff, cols, s.interleaved, 0);
                xi = s.interleaved;
                xiOff = 0;
            }
            sum = kernels.dotCodes32(s.buffer, s.sourceOff, s.stride, s.scalesRead ? s.scales : null, xi, xiOff,
                    s.codeBlocks);
        } else {
            sum = kernels.dotCodes(s.source, s.sourceOff, s.stride, s.block, s.scales, x, xOff, s.codeBlocks);
        }
        if (!s.offsets) {
            return sum;
        }
        blockSums(x, xOff, 1, s.block, s.sums);
        return sum - kernels.dot(s.mins, 0, s.sums, 0, s.codeBlocks);
    }

    /**
     * {@link #dotPreparedTokens} of the rows prepared in {@code a} and {@code b} (output offsets {@code outOffA},
     * {@code outOffB}), the same bits; rows of 32-code blocks share each loaded vector of x between the two
     * ({@link io.csattention.kernel.VectorKernels#dotCodes32TokensPair}).
     */
    public void dotPreparedTokensPair(Scratch a, Scratch b, float[] x, int tokens, float[] blockSums, float[] out,
                                      int outOffA, int outOffB, int outStride,
                                      io.csattention.kernel.VectorKernels kernels) {
        if (a.isFloat || b.isFloat || a.buffer == null || b.buffer == null || tokens < 4) {
            dotPreparedTokens(a, x, tokens, blockSums, out, outOffA, outStride, kernels);
            dotPreparedTokens(b, x, tokens, blockSums, out, outOffB, outStride, kernels);
            return;
        }
        readScales(a);
        readScales(b);
        kernels.dotCodes32TokensPair(a.buffer, a.sourceOff, b.buffer, b.sourceOff, a.stride, a.scales, b.scales, x, 0,
                cols, tokens, out, outOffA, outOffB, outStride, a.codeBlocks, a.floats, b.floats);
        subtractOffsets(a, tokens, blockSums, out, outOffA, outStride, kernels);
        subtractOffsets(b, tokens, blockSums, out, outOffB, outStride, kernels);
    }

    private static void readScales(Scratch s) {
        if (!s.scalesRead) {
            for (int b = 0; b < s.codeBlocks; b++) {
                s.scales[b] = Half.toFloat(s.buffer.getShort(s.sourceOff - 2 + b * s.stride));
            }
            s.scalesRead = true;
        }
    }

    private static void subtractOffsets(Scratch s, int tokens, float[] blockSums, float[] out, int outOff,
                                        int outStride, io.csattention.kernel.VectorKernels kernels) {
        if (s.offsets) {
            for (int t = 0; t < tokens; t++) {
                int o = outOff + t * outStride;
                out[o] = out[o] - kernels.dot(s.mins, 0, blockSums, t * s.codeBlocks, s.codeBlocks);
            }
        }
    }

    /**
     * The row prepared in {@code s} against {@code tokens} rows of x [tokens, cols]: {@code out[outOff + t *
     * outStride] = dotPrepared(s, x, t * cols)}, the same bits, the row read once for several tokens
     * ({@link io.csattention.kernel.VectorKernels#dotCodesTokens}). {@code x} is {@link #input}{@code (x, tokens)}
     * and {@code blockSums} is {@link #blockSums} of the x before it.
     */
    public void dotPreparedTokens(Scratch s, float[] x, int tokens, float[] blockSums, float[] out, int outOff,
                                  int outStride, io.csattention.kernel.VectorKernels kernels) {
        if (s.isFloat) {
            kernels.dotTokens(s.floats, 0, x, 0, cols, tokens, cols, out, outOff, outStride);
            return;
        }
        if (s.buffer != null && !s.scalesRead && tokens < 4) {
            for (int t = 0; t < tokens; t++) {
                out[outOff + t * outStride] = kernels.dotCodes32(s.buffer, s.sourceOff, s.stride, null, x, t * cols,
                        s.codeBlocks);
            }
        } else if (s.buffer != null) {
            readScales(s);
            kernels.dotCodes32Tokens(s.buffer, s.sourceOff, s.stride, s.scales, x, 0, cols, tokens, out, outOff,
                    outStride, s.codeBlocks, s.floats);
        } else {
            kernels.dotCodesTokens(s.source, s.sourceOff, s.stride, s.block, s.scales, x, 0, cols, tokens, out,
                    outOff, outStride, s.codeBlocks, s.floats);
        }
        subtractOffsets(s, tokens, blockSums, out, outOff, outStride, kernels);
    }

    private static int intAt(byte[] raw, int at) {
        return (raw[at] & 0xFF) | (raw[at + 1] & 0xFF) << 8 | (raw[at + 2] & 0xFF) << 16 | (raw[at + 3] & 0xFF) << 24;
    }

    /** Q4_0/Q4_1/Q5_0/Q5_1 blocks as codes {@code q - bias} and scale d (offset {@code -m}); false: no offsets. */
    private boolean unpackSmall(byte[] raw, int blocks, Scratch s) {
        boolean withMin = type == TensorType.Q4_1 || type == TensorType.Q5_1;
        boolean fifthBit = type == TensorType.Q5_0 || type == TensorType.Q5_1;
        int bias = type == TensorType.Q4_0 ? 8 : type == TensorType.Q5_0 ? 16 : 0;
        int blockBytes = type.blockBytes();
        for (int b = 0; b < blocks; b++) {
            int at = b * blockBytes;
            s.scales[b] = half(raw, at);
            s.mins[b] = withMin ? -half(raw, at + 2) : 0f;
            int qh = fifthBit ? intAt(raw, at + (withMin ? 4 : 2)) : 0;
            int qs = at + (withMin ? 4 : 2) + (fifthBit ? 4 : 0);
            int out = b * 32;
            for (int j = 0; j < 16; j++) {
                int packed = raw[qs + j] & 0xFF;
                int low = (packed & 0x0F) | (fifthBit ? ((qh >>> j) << 4) & 0x10 : 0);
                int high = (packed >>> 4) | (fifthBit ? (qh >>> (j + 12)) & 0x10 : 0);
                s.codes[out + j] = (byte) (low - bias);
                s.codes[out + j + 16] = (byte) (high - bias);
            }
        }
        return withMin;
    }

    /** One Q4_K/Q5_K block of 256 as 8 sub-blocks of 32 codes with scale {@code d * sc} and offset {@code dmin * m}. */
    private static void unpackK(byte[] raw, int at, boolean fifthBit, Scratch s, int block) {
        float d = half(raw, at);
        float dmin = half(raw, at + 2);
        int scales = at + 4;
        int qh = at + 16;
        int qs = fifthBit ? at + 48 : at + 16;
        for (int chunk = 0; chunk < 4; chunk++) {
            for (int half = 0; half < 2; half++) {
                int sub = 2 * chunk + half;
                int sc = sub < 4 ? raw[scales + sub] & 63
                        : (raw[scales + sub + 4] & 0x0F) | (((raw[scales + sub - 4] & 0xFF) >>> 6) << 4);
                int m = sub < 4 ? raw[scales + sub + 4] & 63
                        : ((raw[scales + sub + 4] & 0xFF) >>> 4) | (((raw[scales + sub] & 0xFF) >>> 6) << 4);
                s.scales[8 * block + sub] = d * sc;
                s.mins[8 * block + sub] = dmin * m;
            }
            int low = 1 << (2 * chunk);
            int high = 2 << (2 * chunk);
            int q = qs + 32 * chunk;
            int y = 256 * block + 64 * chunk;
            for (int l = 0; l < 32; l++) {
                int packed = raw[q + l] & 0xFF;
                int h = fifthBit ? raw[qh + l] & 0xFF : 0;
                s.codes[y + l] = (byte) ((packed & 0x0F) + ((h & low) != 0 ? 16 : 0));
                s.codes[y + 32 + l] = (byte) ((packed >>> 4) + ((h & high) != 0 ? 16 : 0));
            }
        }
    }

    /** One Q6_K block of 256 as 16 sub-blocks of 16 codes {@code q - 32} with scale {@code d * sc}. */
    private static void unpackQ6K(byte[] raw, int at, Scratch s, int block) {
        float d = half(raw, at + 208);
        for (int half = 0; half < 2; half++) {
            int ql = at + 64 * half;
            int qh = at + 128 + 32 * half;
            int sc = at + 192 + 8 * half;
            int y = 256 * block + 128 * half;
            for (int l = 0; l < 32; l++) {
                int high = raw[qh + l] & 0xFF;
                s.codes[y + l] = (byte) (((raw[ql + l] & 0x0F) | ((high & 3) << 4)) - 32);
                s.codes[y + l + 32] = (byte) (((raw[ql + l + 32] & 0x0F) | (((high >>> 2) & 3) << 4)) - 32);
                s.codes[y + l + 64] = (byte) (((raw[ql + l] & 0xFF) >>> 4 | (((high >>> 4) & 3) << 4)) - 32);
                s.codes[y + l + 96] = (byte) (((raw[ql + l + 32] & 0xFF) >>> 4 | (((high >>> 6) & 3) << 4)) - 32);
            }
            // element 32 j + l of the half (l < 32) uses scale sc[2 j + l / 16]: sub-block k of 16 uses sc[k]
            for (int k = 0; k < 8; k++) {
                s.scales[16 * block + 8 * half + k] = d * raw[sc + k];
            }
        }
    }

    /**
     * Copies the bytes of rows [from, to) into a small buffer, row by row, and returns a checksum of what it read:
     * the read-bandwidth reference of the model benchmark (the least a product over these rows must read, at the
     * speed of a bulk copy).
     */
    public long readRows(int from, int to) {
        int rowBytes = (int) type.bytes(cols);
        byte[] buffer = new byte[rowBytes];
        long sum = 0;
        for (int r = from; r < to; r++) {
            int stored = rowOrder == null ? r : rowOrder[r];
            int segment = stored / rowsPerSegment;
            segments[segment].get((stored - segment * rowsPerSegment) * rowBytes, buffer, 0, rowBytes);
            sum += buffer[r % rowBytes];
        }
        return sum;
    }

    /** Every element as float32 (small tensors: norms). */
    public float[] toFloats() {
        float[] out = new float[rows * cols];
        float[] row = new float[cols];
        for (int r = 0; r < rows; r++) {
            row(r, row);
            System.arraycopy(row, 0, out, r * cols, cols);
        }
        return out;
    }
}
