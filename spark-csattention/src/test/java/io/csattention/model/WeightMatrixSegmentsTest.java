package io.csattention.model;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Tensors mapped in segments of whole rows ({@link GgufFile#matrix}): rows read across segment boundaries as from
 * one buffer, for every type; a real tensor past 2 GiB in a sparse file; reordered rows over segments.
 */
class WeightMatrixSegmentsTest {

    @TempDir
    Path dir;

    @ParameterizedTest
    @EnumSource(TensorType.class)
    void rowsReadTheSameAcrossSegmentBoundaries(TensorType type) throws IOException {
        int rows = 7;
        int cols = 512;
        long seed = 20261203L + type.ordinal();
        Random random = new Random(seed);
        float[] values = new float[rows * cols];
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) random.nextGaussian();
        }
        Path file = dir.resolve(type + ".gguf");
        new GgufWriter().tensor("t", type, values, rows, cols).write(file);
        GgufFile gguf = GgufFile.read(file);
        long rowBytes = type.bytes(cols);
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            WeightMatrix whole = gguf.matrix(channel, "t");
            assertEquals(rows, whole.rowsPerSegment());
            // 3 rows a segment (7 = 3 + 3 + 1), and 2 rows when the limit is a byte short of 3
            for (long limit : new long[] {3 * rowBytes, 3 * rowBytes - 1, rowBytes}) {
                WeightMatrix split = gguf.matrix(channel, "t", limit);
                assertEquals((int) (limit / rowBytes), split.rowsPerSegment());
                float[] expected = new float[cols];
                float[] actual = new float[cols];
                for (int r = 0; r < rows; r++) {
                    whole.row(r, expected);
                    split.row(r, actual);
                    assertArrayEquals(expected, actual, type + " row " + r + " limit " + limit + " seed " + seed);
                }
                int[] order = {6, 2, 3, 0, 1, 5, 4};
                WeightMatrix reordered = split.withRowOrder(order).withRowOrder(new int[] {1, 0, 2, 3, 4, 5, 6});
                reordered.row(0, actual);
                whole.row(2, expected);
                assertArrayEquals(expected, actual, "row 0 of the twice reordered matrix is stored row 2");
            }
        }
    }

    /**
     * A F32 tensor of 524,304 rows of 4 KiB (2 GiB + 64 KiB) in a sparse file: three 1 GiB segments, rows patched on
     * both sides of each segment boundary, at 2 GiB and at the end read back; untouched rows are zeros.
     */
    @Test
    void tensorsOfTwoGibibytesOrMoreMapInSegments() throws IOException {
        int cols = 1024;
        int rows = (1 << 19) + 16;
        int rowsPerSegment = (int) (GgufFile.SEGMENT_BYTES / (4L * cols));
        int[] patched = {0, rowsPerSegment - 1, rowsPerSegment, 2 * rowsPerSegment - 1, 2 * rowsPerSegment,
            rows - 1};
        Map<Long, byte[]> patches = new LinkedHashMap<>();
        for (int r : patched) {
            ByteBuffer row = ByteBuffer.allocate(4 * cols).order(ByteOrder.LITTLE_ENDIAN);
            for (int j = 0; j < cols; j++) {
                row.putFloat(r + j / 1024f);
            }
            patches.put(4L * cols * r, row.array());
        }
        Path file = dir.resolve("big.gguf");
        new GgufWriter().put("general.architecture", "llama")
                .sparse("token_embd.weight", TensorType.F32, new long[] {cols, rows}, patches).write(file);
        assertTrue(Files.size(file) > (2L << 30), "past 2 GiB; size=" + Files.size(file));
        GgufFile gguf = GgufFile.read(file);
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            WeightMatrix m = gguf.matrix(channel, "token_embd.weight");
            assertEquals(rows, m.rows());
            assertEquals(rowsPerSegment, m.rowsPerSegment());
            float[] row = new float[cols];
            for (int r : patched) {
                m.row(r, row);
                for (int j = 0; j < cols; j++) {
                    assertEquals(r + j / 1024f, row[j], 0f, "row " + r + " col " + j);
                }
            }
            m.row(rowsPerSegment + 1, row);
            assertEquals(0f, row[0]);
        }
    }
}
