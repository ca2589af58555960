package io.csattention.format;

import io.csattention.core.FloatMatrix;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class NpyTest {

    @TempDir
    Path dir;

    @Test
    void float32RoundTrip() throws IOException {
        FloatMatrix m = new FloatMatrix(2, 3, new float[] {1, 2, 3, 4, 5, -6.5f});
        Path file = dir.resolve("m.npy");
        Npy.write(file, m);
        FloatMatrix back = Npy.readMatrix(file);
        assertEquals(2, back.rows());
        assertEquals(3, back.cols());
        assertArrayEquals(m.data(), back.data());
        assertEquals(0, (Files.size(file) - 2 * 3 * 4) % 64, "data starts on a 64-byte boundary");
    }

    @Test
    void readsFloat16AndFloat64() throws IOException {
        ByteBuffer half = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
        half.putShort((short) 0x3c00).putShort((short) 0xc000).putShort((short) 0x3800).putShort((short) 0x7bff);
        Path f2 = write("h.npy", "<f2", "(2, 2)", half.array());
        assertArrayEquals(new float[] {1f, -2f, 0.5f, 65504f}, Npy.readMatrix(f2).data());

        ByteBuffer dbl = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putDouble(0.25).putDouble(-3);
        Path f8 = write("d.npy", "<f8", "(1, 2)", dbl.array());
        assertArrayEquals(new float[] {0.25f, -3f}, Npy.readMatrix(f8).data());
    }

    @Test
    void readsIntegerPositions() throws IOException {
        Path file = dir.resolve("p.npy");
        Npy.writeInts(file, 1, 3, new int[] {7, 8, 9});
        ByteBuffer longs = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(5).putLong(6);
        assertArrayEquals(new long[] {5, 6}, Npy.readLongs(write("l.npy", "<i8", "(2,)", longs.array())));
    }

    @Test
    void rejectsFortranOrder() throws IOException {
        Path file = write("f.npy", "<f4", "(1, 1)", new byte[4], true);
        var error = assertThrows(NpyFormatException.class, () -> Npy.readMatrix(file));
        assertEquals(file + ": Fortran-order arrays are not supported; expected C order (save with "
                + "np.ascontiguousarray)", error.getMessage());
    }

    @Test
    void rejectsWrongRank() throws IOException {
        Path file = write("r.npy", "<f4", "(4,)", new byte[16]);
        var error = assertThrows(NpyFormatException.class, () -> Npy.readMatrix(file));
        assertEquals(file + ": expected a 2-D array, found rank 1 shape (4,)", error.getMessage());
    }

    @Test
    void rejectsMalformedHeadersAndOtherFiles() throws IOException {
        Path notNpy = dir.resolve("x.npy");
        Files.writeString(notNpy, "hello, this is text");
        assertEquals(notNpy + ": not a .npy file (missing the \\x93NUMPY magic)",
                assertThrows(NpyFormatException.class, () -> Npy.readMatrix(notNpy)).getMessage());

        Path noShape = writeRaw("s.npy", "{'descr': '<f4', 'fortran_order': False, }");
        assertEquals(noShape + ": malformed header, no 'shape' entry: {'descr': '<f4', 'fortran_order': False, }",
                assertThrows(NpyFormatException.class, () -> Npy.readMatrix(noShape)).getMessage());

        Path badType = write("t.npy", "<c8", "(1, 1)", new byte[8]);
        assertEquals(badType + ": unsupported dtype '<c8'; expected <f4, <f2, <f8, <i4 or <i8",
                assertThrows(NpyFormatException.class, () -> Npy.readMatrix(badType)).getMessage());

        Path truncated = write("u.npy", "<f4", "(10, 10)", new byte[12]);
        assertEquals(truncated + ": truncated data (12 of 400 bytes for shape (10,10))",
                assertThrows(NpyFormatException.class, () -> Npy.readMatrix(truncated)).getMessage());

        Path missing = dir.resolve("missing.npy");
        assertEquals(missing + ": no such file",
                assertThrows(NpyFormatException.class, () -> Npy.readMatrix(missing)).getMessage());
    }

    private Path write(String name, String descr, String shape, byte[] data) throws IOException {
        return write(name, descr, shape, data, false);
    }

    private Path write(String name, String descr, String shape, byte[] data, boolean fortran) throws IOException {
        String dict = "{'descr': '" + descr + "', 'fortran_order': " + (fortran ? "True" : "False") + ", 'shape': "
                + shape + ", }";
        Path file = writeRaw(name, dict);
        Files.write(file, data, java.nio.file.StandardOpenOption.APPEND);
        return file;
    }

    private Path writeRaw(String name, String dict) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0});
        String header = dict + "\n";
        out.write(header.length() & 0xff);
        out.write(header.length() >> 8);
        out.write(header.getBytes(StandardCharsets.ISO_8859_1));
        Path file = dir.resolve(name);
        Files.write(file, out.toByteArray());
        return file;
    }
}
