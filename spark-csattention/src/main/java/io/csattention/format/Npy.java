package io.csattention.format;

import io.csattention.core.FloatMatrix;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * NumPy {@code .npy} files, format versions 1.0 to 3.0: magic {@code \x93NUMPY}, major and minor version bytes, a
 * little-endian header length (2 bytes in 1.0, 4 bytes after), then an ASCII dict with {@code descr},
 * {@code fortran_order} and {@code shape}, padded so the data starts at a multiple of 64 bytes.
 *
 * <p>Reads little-endian float32 ({@code <f4}), float16 ({@code <f2}), float64 ({@code <f8}), int32 and int64, in C
 * order. Writes version 1.0, little-endian float32 and int32.
 */
public final class Npy {

    private static final byte[] MAGIC = {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y'};
    /** numpy writes headers of a few hundred bytes; version 2 and 3 lengths are int32. */
    private static final int MAX_HEADER_BYTES = 1 << 20;
    private static final Pattern DESCR = Pattern.compile("'descr'\\s*:\\s*'([^']*)'");
    private static final Pattern FORTRAN = Pattern.compile("'fortran_order'\\s*:\\s*(True|False)");
    private static final Pattern SHAPE = Pattern.compile("'shape'\\s*:\\s*\\(([^)]*)\\)");

    private Npy() {
    }

    /** Reads a 2-D floating array as a float32 matrix; fails with the file's name on any other shape or type. */
    public static FloatMatrix readMatrix(Path file) throws IOException {
        NpyArray array = read(file);
        if (array.rank() != 2) {
            throw new NpyFormatException(file + ": expected a 2-D array, found rank " + array.rank() + " shape "
                    + shapeText(array.shape()));
        }
        if (!array.isFloating()) {
            throw new NpyFormatException(file + ": expected float32, float16 or float64 data, found dtype '"
                    + array.dtype() + "'");
        }
        return new FloatMatrix(array.rows(), array.cols(), array.floats());
    }

    /** Reads a 1-D integer array (positions); fails with the file's name otherwise. */
    public static long[] readLongs(Path file) throws IOException {
        NpyArray array = read(file);
        if (array.rank() != 1 || array.isFloating()) {
            throw new NpyFormatException(file + ": expected a 1-D int32 or int64 array, found dtype '" + array.dtype()
                    + "' shape " + shapeText(array.shape()));
        }
        return array.longs();
    }

    public static NpyArray read(Path file) throws IOException {
        if (!Files.isRegularFile(file)) {
            throw new NpyFormatException(file + ": no such file");
        }
        try (InputStream in = Files.newInputStream(file)) {
            return read(in, file.toString());
        }
    }

    public static NpyArray read(InputStream in, String name) throws IOException {
        byte[] magic = in.readNBytes(8);
        if (magic.length < 8) {
            throw new NpyFormatException(name + ": not a .npy file (shorter than its 8-byte preamble)");
        }
        for (int i = 0; i < MAGIC.length; i++) {
            if (magic[i] != MAGIC[i]) {
                throw new NpyFormatException(name + ": not a .npy file (missing the \\x93NUMPY magic)");
            }
        }
        int major = magic[6] & 0xff;
        if (major < 1 || major > 3) {
            throw new NpyFormatException(name + ": unsupported .npy version " + major + "." + (magic[7] & 0xff)
                    + "; expected 1.0 to 3.0");
        }
        byte[] lengthBytes = in.readNBytes(major == 1 ? 2 : 4);
        ByteBuffer lengthBuffer = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN);
        lengthBuffer.put(lengthBytes).position(0);
        int headerLength = major == 1 ? (lengthBuffer.getShort() & 0xffff) : lengthBuffer.getInt();
        if (headerLength < 0 || headerLength > MAX_HEADER_BYTES) {
            throw new NpyFormatException(name + ": header length must be in [0, " + MAX_HEADER_BYTES + "]; length="
                    + (headerLength & 0xFFFFFFFFL));
        }
        byte[] headerBytes = in.readNBytes(headerLength);
        if (headerBytes.length < headerLength) {
            throw new NpyFormatException(name + ": truncated header (" + headerBytes.length + " of " + headerLength
                    + " bytes)");
        }
        String header = new String(headerBytes, major == 3 ? StandardCharsets.UTF_8 : StandardCharsets.ISO_8859_1);
        String descr = group(DESCR, header, name, "descr");
        boolean fortran = "True".equals(group(FORTRAN, header, name, "fortran_order"));
        if (fortran) {
            throw new NpyFormatException(name + ": Fortran-order arrays are not supported; expected C order "
                    + "(save with np.ascontiguousarray)");
        }
        long[] shape = parseShape(group(SHAPE, header, name, "shape"), name);
        long count = 1;
        for (long dim : shape) {
            count = dim != 0 && count > Long.MAX_VALUE / dim ? Long.MAX_VALUE : count * dim;
        }
        if (count > Integer.MAX_VALUE - 8) {
            throw new NpyFormatException(name + ": too many elements " + count + "; expected at most "
                    + (Integer.MAX_VALUE - 8));
        }
        int elements = (int) count;
        String type = descr.length() > 1 && "<|=".indexOf(descr.charAt(0)) >= 0 ? descr.substring(1) : descr;
        if (descr.startsWith(">") && !type.equals("u1") && !type.equals("i1")) {
            throw new NpyFormatException(name + ": big-endian dtype '" + Printable.of(descr, 64) + "' is not supported; expected "
                    + "little-endian (<f4, <f2, <f8, <i4, <i8)");
        }
        int width = switch (type) {
            case "f4", "i4" -> 4;
            case "f2" -> 2;
            case "f8", "i8" -> 8;
            default -> throw new NpyFormatException(name + ": unsupported dtype '" + Printable.of(descr, 64)
                    + "'; expected <f4, <f2, <f8, <i4 or <i8");
        };
        long bytes = (long) elements * width;
        if (bytes > Integer.MAX_VALUE - 8) {
            throw new NpyFormatException(name + ": too many bytes " + bytes + " for shape " + shapeText(shape)
                    + "; expected at most " + (Integer.MAX_VALUE - 8));
        }
        byte[] data = in.readNBytes((int) bytes);
        if (data.length < bytes) {
            throw new NpyFormatException(name + ": truncated data (" + data.length + " of " + ((long) elements * width)
                    + " bytes for shape " + shapeText(shape) + ")");
        }
        ByteBuffer buffer = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
        if (type.startsWith("f")) {
            float[] floats = new float[elements];
            for (int i = 0; i < elements; i++) {
                floats[i] = switch (width) {
                    case 2 -> Half.toFloat(buffer.getShort());
                    case 4 -> buffer.getFloat();
                    default -> (float) buffer.getDouble();
                };
            }
            return new NpyArray(shape, descr, floats, null);
        }
        long[] longs = new long[elements];
        for (int i = 0; i < elements; i++) {
            longs[i] = width == 4 ? buffer.getInt() : buffer.getLong();
        }
        return new NpyArray(shape, descr, null, longs);
    }

    private static String group(Pattern pattern, String header, String name, String key) throws NpyFormatException {
        Matcher matcher = pattern.matcher(header);
        if (!matcher.find()) {
            throw new NpyFormatException(name + ": malformed header, no '" + key + "' entry: " + Printable.of(header.trim(), 200));
        }
        return matcher.group(1);
    }

    private static long[] parseShape(String text, String name) throws NpyFormatException {
        String[] parts = text.split(",");
        java.util.List<Long> dims = new java.util.ArrayList<>();
        for (String part : parts) {
            String p = part.trim();
            if (p.isEmpty()) {
                continue;
            }
            try {
                long dim = Long.parseLong(p.endsWith("L") ? p.substring(0, p.length() - 1) : p);
                if (dim < 0) {
                    throw new NumberFormatException();
                }
                dims.add(dim);
            } catch (NumberFormatException e) {
                throw new NpyFormatException(name + ": malformed shape (" + Printable.of(text, 100) + ")");
            }
        }
        return dims.stream().mapToLong(Long::longValue).toArray();
    }

    static String shapeText(long[] shape) {
        StringBuilder text = new StringBuilder("(");
        for (int i = 0; i < shape.length; i++) {
            text.append(shape[i]).append(i + 1 < shape.length || shape.length == 1 ? "," : "");
        }
        return text.append(')').toString();
    }

    /** Writes a float32 matrix as a 2-D {@code <f4} array. */
    public static void write(Path file, FloatMatrix matrix) throws IOException {
        try (OutputStream out = Files.newOutputStream(file)) {
            writeHeader(out, "<f4", new long[] {matrix.rows(), matrix.cols()});
            ByteBuffer buffer = ByteBuffer.allocate(4 * matrix.rows() * matrix.cols()).order(ByteOrder.LITTLE_ENDIAN);
            buffer.asFloatBuffer().put(matrix.data(), 0, matrix.rows() * matrix.cols());
            out.write(buffer.array());
        }
    }

    /** Writes an int32 matrix [rows, cols] given row-major. */
    public static void writeInts(Path file, int rows, int cols, int[] data) throws IOException {
        try (OutputStream out = Files.newOutputStream(file)) {
            writeHeader(out, "<i4", new long[] {rows, cols});
            ByteBuffer buffer = ByteBuffer.allocate(4 * rows * cols).order(ByteOrder.LITTLE_ENDIAN);
            buffer.asIntBuffer().put(data, 0, rows * cols);
            out.write(buffer.array());
        }
    }

    /** Writes an int32 vector [length] (positions, as {@link #readLongs} reads them). */
    public static void writeIntVector(Path file, int[] data) throws IOException {
        try (OutputStream out = Files.newOutputStream(file)) {
            writeHeader(out, "<i4", new long[] {data.length});
            ByteBuffer buffer = ByteBuffer.allocate(4 * data.length).order(ByteOrder.LITTLE_ENDIAN);
            buffer.asIntBuffer().put(data);
            out.write(buffer.array());
        }
    }

    private static void writeHeader(OutputStream out, String descr, long[] shape) throws IOException {
        String dict = String.format(Locale.ROOT, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr,
                shapeText(shape));
        int unpadded = MAGIC.length + 2 + 2 + dict.length() + 1;
        int padding = (64 - unpadded % 64) % 64;
        String header = dict + " ".repeat(padding) + "\n";
        out.write(MAGIC);
        out.write(new byte[] {1, 0});
        out.write(header.length() & 0xff);
        out.write((header.length() >> 8) & 0xff);
        out.write(header.getBytes(StandardCharsets.ISO_8859_1));
    }
}
