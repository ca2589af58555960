package io.csattention.format;

import io.csattention.core.CSAttentionIndex;
import io.csattention.core.CSAttentionSettings;
import io.csattention.core.FloatMatrix;
import io.csattention.kernel.Kernels;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.zip.CRC32;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The index file and .npy parsers under {@link FuzzLoop}: only their typed exceptions, never another exception, an
 * OutOfMemoryError or a StackOverflowError. Seeds: the committed golden index files (version 1, version 2 with RoPE),
 * a built 16-dimensional head, and small .npy arrays of every dtype the reader takes.
 */
class FormatFuzzTest {

    /**
     * Index files, read four ways: with the length known, without, the summary only, and (a quarter of the inputs)
     * with the checksum recomputed after the mutation so that the checks behind it run. An input accepted with its
     * checksum as mutated must be one of the seeds; one accepted with a recomputed checksum must write back to the
     * same bytes.
     */
    @Test
    void indexFiles() throws IOException {
        List<byte[]> seeds = new ArrayList<>(List.of(IndexFileTest.golden(),
                IndexFileTest.resource("/format/index-v2-rope.csai")));
        SplittableRandom random = new SplittableRandom(7);
        FloatMatrix keys = matrix(random, 40, 16);
        CSAttentionIndex index = CSAttentionIndex.build(Kernels.preferred(), keys, matrix(random, 20, 16),
                CSAttentionSettings.defaults().withCentroids(4).withSubspaces(4));
        seeds.add(IndexFileTest.bytes(new IndexedHead("ctx-0", 1, 2, index, keys, matrix(random, 40, 16))));
        FuzzLoop.Report report = FuzzLoop.run("index-file", seeds, 6000, List.of(), (input, i) -> {
            ByteArrayInputStream in = new ByteArrayInputStream(input);
            switch (i % 4) {
                case 0 -> {
                    IndexedHead head = IndexFile.read(in, "f.csai", input.length);
                    return seeds.stream().anyMatch(s -> Arrays.equals(s, input)) ? null
                            : "accepted a changed file of " + head.index().keys() + " keys";
                }
                case 1 -> {
                    IndexFile.read(in, "f.csai");
                    return seeds.stream().anyMatch(s -> Arrays.equals(s, input)) ? null : "accepted a changed file";
                }
                case 2 -> {
                    IndexFile.readSummary(in, "f.csai", input.length);
                    return null;
                }
                default -> {
                    byte[] fixed = withChecksum(input);
                    IndexedHead head = IndexFile.read(new ByteArrayInputStream(fixed), "f.csai", fixed.length);
                    ByteArrayOutputStream out = new ByteArrayOutputStream();
                    IndexFile.write(head, out, ByteBuffer.wrap(fixed).order(ByteOrder.LITTLE_ENDIAN).getInt(25));
                    return Arrays.equals(out.toByteArray(), fixed) ? null : "accepted bytes it does not write back";
                }
            }
        }, List.of(IndexFileException.class));
        assertEquals(List.of(), report.unclean(), report.toString());
    }

    /** {@code input} with the footer's checksum set to the CRC32 of what precedes the footer. */
    private static byte[] withChecksum(byte[] input) {
        if (input.length < IndexFile.FOOTER_BYTES) {
            return input;
        }
        CRC32 crc = new CRC32();
        crc.update(input, 0, input.length - IndexFile.FOOTER_BYTES);
        byte[] fixed = input.clone();
        ByteBuffer.wrap(fixed).order(ByteOrder.LITTLE_ENDIAN).putLong(fixed.length - 8, crc.getValue());
        return fixed;
    }

    @Test
    void npyFiles() throws IOException {
        List<byte[]> seeds = new ArrayList<>();
        Path dir = Files.createTempDirectory("npy-fuzz");
        try {
            Path m = dir.resolve("m.npy");
            Npy.write(m, new FloatMatrix(2, 3, new float[] {1, 2, 3, 4, 5, -6.5f}));
            seeds.add(Files.readAllBytes(m));
            Npy.writeInts(m, 2, 2, new int[] {1, 2, 3, 4});
            seeds.add(Files.readAllBytes(m));
            Npy.writeIntVector(m, new int[] {7, 8, 9});
            seeds.add(Files.readAllBytes(m));
        } finally {
            try (var files = Files.list(dir)) {
                for (Path p : files.toList()) {
                    Files.delete(p);
                }
            }
            Files.delete(dir);
        }
        seeds.add(npy(1, "<f2", "(2, 2)", new byte[8]));
        seeds.add(npy(1, "<f8", "(1, 2)", new byte[16]));
        seeds.add(npy(2, "<i8", "(2,)", new byte[16]));
        seeds.add(npy(3, "<f4", "(1, 1, 2)", new byte[8]));
        FuzzLoop.Report report = FuzzLoop.run("npy", seeds, 10_000,
                FuzzLoop.tokens("'descr': '<f4', ", "(99999999999, 99999999999)", "(4294967296, 4294967296, 2)",
                        "'shape': (-1, 2)", "True", "'>f8'", "(1,)", "L"),
                (input, i) -> {
                    NpyArray array = Npy.read(new ByteArrayInputStream(input), "a.npy");
                    long elements = 1;
                    for (long d : array.shape()) {
                        elements = Math.multiplyExact(elements, d);
                    }
                    int read = array.floats() != null ? array.floats().length : array.longs().length;
                    return elements == read ? null : "accepted shape " + Arrays.toString(array.shape()) + " with "
                            + read + " elements";
                }, List.of(NpyFormatException.class));
        assertEquals(List.of(), report.unclean(), report.toString());
    }

    private static byte[] npy(int major, String descr, String shape, byte[] data) {
        String dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }\n";
        byte[] header = dict.getBytes(StandardCharsets.ISO_8859_1);
        ByteBuffer b = ByteBuffer.allocate(8 + (major == 1 ? 2 : 4) + header.length + data.length)
                .order(ByteOrder.LITTLE_ENDIAN);
        b.put((byte) 0x93).put("NUMPY".getBytes(StandardCharsets.ISO_8859_1)).put((byte) major).put((byte) 0);
        if (major == 1) {
            b.putShort((short) header.length);
        } else {
            b.putInt(header.length);
        }
        return b.put(header).put(data).array();
    }

    private static FloatMatrix matrix(SplittableRandom random, int rows, int cols) {
        float[] data = new float[rows * cols];
        for (int i = 0; i < data.length; i++) {
            data[i] = (float) random.nextGaussian();
        }
        return new FloatMatrix(rows, cols, data);
    }
}
