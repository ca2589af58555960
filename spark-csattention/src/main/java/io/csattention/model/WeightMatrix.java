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
 */
public final class WeightMatrix {

    private final String name;
    private final TensorType type;
    private final int rows;
    private final int cols;
    private final ByteBuffer bytes;
    private final FloatBuffer floats;

    private WeightMatrix(String name, TensorType type, int rows, int cols, ByteBuffer bytes) {
        this.name = name;
        this.type = type;
        this.rows = rows;
        this.cols = cols;
        this.bytes = bytes.order(ByteOrder.LITTLE_ENDIAN);
        this.floats = type == TensorType.F32 ? this.bytes.asFloatBuffer() : null;
        if (type.blockSize() > 1 && cols % type.blockSize() != 0) {
            throw new IllegalArgumentException(name + " row length must be a multiple of " + type.blockSize()
                    + " for " + type + "; " + name + ".cols=" + cols);
        }
        long need = (long) rows * type.bytes(cols);
        if (bytes.remaining() < need) {
            throw new IllegalArgumentException(name + " must hold " + need + " bytes; " + name + ".bytes="
                    + bytes.remaining());
        }
    }

    /** A matrix over {@code bytes} (from its position, little-endian). */
    public static WeightMatrix of(String name, TensorType type, int rows, int cols, ByteBuffer bytes) {
        return new WeightMatrix(name, type, rows, cols, bytes.slice());
    }

    /** A float32 matrix over a heap array (tests and small tensors). */
    public static WeightMatrix ofFloats(String name, int rows, int cols, float[] data) {
        ByteBuffer buffer = ByteBuffer.allocate(rows * cols * 4).order(ByteOrder.LITTLE_ENDIAN);
        buffer.asFloatBuffer().put(data, 0, rows * cols);
        return new WeightMatrix(name, TensorType.F32, rows, cols, buffer);
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

    /** Decodes row {@code r} into {@code dst[0 .. cols)}. */
    public void row(int r, float[] dst) {
        switch (type) {
            case F32 -> floats.get(r * cols, dst, 0, cols);
            case F16 -> {
                int base = r * cols * 2;
                for (int j = 0; j < cols; j++) {
                    dst[j] = Half.toFloat(bytes.getShort(base + 2 * j));
                }
            }
            case BF16 -> {
                int base = r * cols * 2;
                for (int j = 0; j < cols; j++) {
                    dst[j] = Half.bfloat16ToFloat(bytes.getShort(base + 2 * j));
                }
            }
            case Q8_0 -> {
                int blocks = cols / 32;
                int base = r * blocks * 34;
                for (int b = 0; b < blocks; b++) {
                    int at = base + b * 34;
                    float d = Half.toFloat(bytes.getShort(at));
                    for (int j = 0; j < 32; j++) {
                        dst[b * 32 + j] = bytes.get(at + 2 + j) * d;
                    }
                }
            }
            case Q4_0 -> {
                int blocks = cols / 32;
                int base = r * blocks * 18;
                for (int b = 0; b < blocks; b++) {
                    int at = base + b * 18;
                    float d = Half.toFloat(bytes.getShort(at));
                    for (int j = 0; j < 16; j++) {
                        int packed = bytes.get(at + 2 + j) & 0xFF;
                        dst[b * 32 + j] = ((packed & 0x0F) - 8) * d;
                        dst[b * 32 + j + 16] = ((packed >>> 4) - 8) * d;
                    }
                }
            }
        }
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
