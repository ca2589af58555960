package io.csattention.model;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The header of a GGUF file (versions 2 and 3) and memory-mapped access to its tensors.
 *
 * <p>Layout, little-endian: magic {@code "GGUF"}; uint32 version; uint64 tensor count; uint64 metadata count;
 * metadata entries (string key, uint32 value type, value); tensor infos (string name, uint32 rank, uint64 dims with
 * the contiguous dimension first, uint32 ggml type, uint64 offset into the data section); padding to
 * {@code general.alignment} (32 when absent); the data section. A string is a uint64 byte length and UTF-8 bytes;
 * an array is a uint32 element type, a uint64 count and the elements. Integer metadata is read as {@link Long},
 * floats as {@link Double}, arrays as {@link List}.
 */
public final class GgufFile {

    public static final int MAGIC = 0x46554747;
    public static final int DEFAULT_ALIGNMENT = 32;
    /** Metadata arrays of arrays deeper than this are refused (llama.cpp writes none deeper than 1). */
    public static final int MAX_ARRAY_DEPTH = 8;
    /** Elements of one tensor at most (2^48): far above any model, far below overflow. */
    static final long MAX_ELEMENTS = 1L << 48;

    /** Value types of metadata entries. */
    static final int UINT8 = 0;
    static final int INT8 = 1;
    static final int UINT16 = 2;
    static final int INT16 = 3;
    static final int UINT32 = 4;
    static final int INT32 = 5;
    static final int FLOAT32 = 6;
    static final int BOOL = 7;
    static final int STRING = 8;
    static final int ARRAY = 9;
    static final int UINT64 = 10;
    static final int INT64 = 11;
    static final int FLOAT64 = 12;

    /** One tensor's entry in the header; {@code dims[0]} is the contiguous (column) dimension. */
    public record TensorInfo(String name, long[] dims, int typeId, long offset) {
        public long elements() {
            long n = 1;
            for (long d : dims) {
                n *= d;
            }
            return n;
        }
    }

    private final Path file;
    private final int version;
    private final Map<String, Object> metadata;
    private final Map<String, TensorInfo> tensors;
    private final long dataOffset;
    private final long size;

    private GgufFile(Path file, int version, Map<String, Object> metadata, Map<String, TensorInfo> tensors,
                     long dataOffset, long size) {
        this.file = file;
        this.version = version;
        this.metadata = metadata;
        this.tensors = tensors;
        this.dataOffset = dataOffset;
        this.size = size;
    }

    static boolean hasMagic(ByteBuffer head) {
        return head.remaining() >= 4 && head.duplicate().order(ByteOrder.LITTLE_ENDIAN).getInt(0) == MAGIC;
    }

    /**
     * Reads the header of {@code file}. Every count, length, dimension, offset and the alignment is checked against
     * the file's size and the format before anything is allocated; nested metadata arrays are read without
     * recursion, at most {@value #MAX_ARRAY_DEPTH} deep. Failures are one line naming the file, the field, its value
     * and what was expected.
     */
    public static GgufFile read(Path file) throws IOException {
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = channel.size();
            Reader in = new Reader(channel, file, size);
            if (in.int32() != MAGIC) {
                throw new IOException("model file must be GGUF or a llama2.c checkpoint; model=" + file);
            }
            int version = in.int32();
            if (version < 2 || version > 3) {
                throw new IOException("GGUF version must be 2 or 3; version=" + version + " (model=" + file + ")");
            }
            // the smallest tensor info: empty name, rank, one dim, type, offset; the smallest entry: empty key, type,
            // one byte
            long tensorCount = in.count("tensor count", 8 + 4 + 8 + 4 + 8);
            long metadataCount = in.count("metadata count", 8 + 4 + 1);
            Map<String, Object> metadata = new LinkedHashMap<>();
            for (long i = 0; i < metadataCount; i++) {
                String key = in.string("metadata key");
                metadata.put(key, in.value(in.int32(), key));
            }
            Map<String, TensorInfo> tensors = new LinkedHashMap<>();
            for (long i = 0; i < tensorCount; i++) {
                String name = in.string("tensor name");
                String shown = show(name);
                int rank = in.int32();
                if (rank < 1 || rank > 4) {
                    throw new IOException("GGUF tensor rank must be in [1, 4]; " + shown + ".rank=" + rank + " (model="
                            + file + ")");
                }
                long[] dims = new long[rank];
                long elements = 1;
                for (int d = 0; d < rank; d++) {
                    dims[d] = in.int64();
                    if (dims[d] <= 0) {
                        throw new IOException("GGUF tensor dimensions must be > 0; " + shown + ".dims[" + d + "]="
                                + dims[d] + " (model=" + file + ")");
                    }
                    if (dims[d] > MAX_ELEMENTS / elements) {
                        throw new IOException("GGUF tensor must have at most 2^48 elements; " + shown + ".dims="
                                + java.util.Arrays.toString(dims) + " (model=" + file + ")");
                    }
                    elements *= dims[d];
                }
                int type = in.int32();
                long offset = in.int64();
                if (offset < 0) {
                    throw new IOException("GGUF tensor offset must be >= 0; " + shown + ".offset=" + offset
                            + " (model=" + file + ")");
                }
                if (tensors.put(name, new TensorInfo(name, dims, type, offset)) != null) {
                    throw new IOException("GGUF tensor names must be unique; name=" + shown + " (model=" + file + ")");
                }
            }
            long alignment = alignment(metadata, file);
            long dataOffset = (in.position() + alignment - 1) / alignment * alignment;
            for (TensorInfo t : tensors.values()) {
                checkPlacement(t, alignment, dataOffset, size, file);
            }
            return new GgufFile(file, version, metadata, tensors, dataOffset, size);
        } catch (EOFException e) {
            throw new IOException("model file is truncated: the GGUF header ends early; model=" + file);
        }
    }

    /** {@code general.alignment}: a power of two in [1, 2^30], 32 when absent. */
    private static long alignment(Map<String, Object> metadata, Path file) throws IOException {
        Object value = metadata.getOrDefault("general.alignment", (long) DEFAULT_ALIGNMENT);
        if (!(value instanceof Long a) || a <= 0 || a > 1 << 30 || (a & (a - 1)) != 0) {
            throw new IOException("GGUF metadata general.alignment must be a power of two in [1, 2^30]; "
                    + "general.alignment=" + show(value) + " (model=" + file + ")");
        }
        return a;
    }

    /** A tensor starts at a multiple of the alignment and, when its type is one this runtime reads, ends in the file. */
    private static void checkPlacement(TensorInfo t, long alignment, long dataOffset, long size, Path file)
            throws IOException {
        if (t.offset() % alignment != 0) {
            throw new IOException("GGUF tensor offset must be a multiple of general.alignment=" + alignment + "; "
                    + show(t.name()) + ".offset=" + t.offset() + " (model=" + file + ")");
        }
        TensorType type = knownType(t.typeId());
        long bytes = type == null ? 0 : type.bytes(t.elements());
        if (t.offset() > size || bytes > size || dataOffset + t.offset() + bytes > size) {
            throw new IOException("model file is truncated: tensor " + show(t.name()) + " ends at byte "
                    + (dataOffset + t.offset() + bytes) + "; size=" + size + " (model=" + file + ")");
        }
    }

    /** A name or metadata value read from the file, as one short line for an error message. */
    static String show(Object value) {
        return value instanceof List<?> list ? "an array of " + list.size() + " values"
                : io.csattention.format.Printable.of(String.valueOf(value), 100);
    }

    private static TensorType knownType(int id) {
        for (TensorType type : TensorType.values()) {
            if (type.ggmlId() == id) {
                return type;
            }
        }
        return null;
    }

    public int version() {
        return version;
    }

    public Map<String, Object> metadata() {
        return metadata;
    }

    public Map<String, TensorInfo> tensors() {
        return tensors;
    }

    public Path file() {
        return file;
    }

    public String string(String key) throws IOException {
        Object value = metadata.get(key);
        if (!(value instanceof String s)) {
            throw new IOException("GGUF metadata must hold the string " + key + "; " + key + "=" + show(value) + " (model="
                    + file + ")");
        }
        return s;
    }

    public long integer(String key, long fallback) throws IOException {
        Object value = metadata.get(key);
        if (value == null) {
            if (fallback == Long.MIN_VALUE) {
                throw new IOException("GGUF metadata must hold " + key + "; model=" + file);
            }
            return fallback;
        }
        if (!(value instanceof Long l)) {
            throw new IOException("GGUF metadata " + key + " must be an integer; " + key + "=" + value + " (model="
                    + file + ")");
        }
        return l;
    }

    public double real(String key, double fallback) throws IOException {
        Object value = metadata.get(key);
        if (value == null) {
            return fallback;
        }
        if (!(value instanceof Double d)) {
            throw new IOException("GGUF metadata " + key + " must be a float; " + key + "=" + show(value) + " (model=" + file
                    + ")");
        }
        return d;
    }

    /**
     * Maps tensor {@code name} as a matrix [rows = product of dims after the first, cols = dims[0]], in segments of
     * whole rows of at most {@value #SEGMENT_BYTES} bytes each (a mapping holds less than 2 GiB), so a tensor of any
     * size maps.
     */
    public WeightMatrix matrix(FileChannel channel, String name) throws IOException {
        return matrix(channel, name, SEGMENT_BYTES);
    }

    /** Bytes of one mapped segment of a tensor at most (1 GiB). */
    static final long SEGMENT_BYTES = 1L << 30;

    /** {@link #matrix(FileChannel, String)} with segments of at most {@code segmentBytes} (tests: small ones). */
    WeightMatrix matrix(FileChannel channel, String name, long segmentBytes) throws IOException {
        TensorInfo info = tensors.get(name);
        if (info == null) {
            throw new IOException("GGUF file must contain tensor " + name + "; model=" + file);
        }
        TensorType type = TensorType.ofGgmlId(info.typeId(), name);
        long cols = info.dims()[0];
        long rows = info.elements() / cols;
        if (cols % type.blockSize() != 0) {
            throw new IOException("tensor " + name + " row length must be a multiple of " + type.blockSize() + "; cols="
                    + cols + " (model=" + file + ")");
        }
        long rowBytes = type.bytes(cols);
        long bytes = rows * rowBytes;
        long start = dataOffset + info.offset();
        if (start + bytes > size) {
            throw new IOException("model file is truncated: tensor " + name + " ends at byte " + (start + bytes)
                    + "; size=" + size + " (model=" + file + ")");
        }
        if (rows > Integer.MAX_VALUE || rowBytes > segmentBytes) {
            throw new IOException("tensor must have at most 2^31-1 rows of at most " + segmentBytes + " bytes; "
                    + name + ".rows=" + rows + ", " + name + ".rowBytes=" + rowBytes + " (model=" + file + ")");
        }
        int rowsPerSegment = (int) Math.max(1, Math.min(rows, segmentBytes / rowBytes));
        int count = (int) ((rows + rowsPerSegment - 1) / rowsPerSegment);
        ByteBuffer[] segments = new ByteBuffer[count];
        for (int i = 0; i < count; i++) {
            long first = (long) i * rowsPerSegment;
            long length = Math.min(rowsPerSegment, rows - first) * rowBytes;
            segments[i] = channel.map(FileChannel.MapMode.READ_ONLY, start + first * rowBytes, length);
        }
        return WeightMatrix.ofSegments(name, type, (int) rows, (int) cols, rowsPerSegment, segments);
    }

    /** Buffered little-endian reads from the start of a channel, checked against the file's size. */
    private static final class Reader {
        private final FileChannel channel;
        private final Path file;
        private final long size;
        private final ByteBuffer buffer = ByteBuffer.allocate(1 << 16).order(ByteOrder.LITTLE_ENDIAN);
        private long consumed;

        Reader(FileChannel channel, Path file, long size) {
            this.channel = channel;
            this.file = file;
            this.size = size;
            buffer.limit(0);
        }

        long position() {
            return consumed;
        }

        long remaining() {
            return size - consumed;
        }

        private void need(int bytes) throws IOException {
            if (buffer.remaining() >= bytes) {
                return;
            }
            buffer.compact();
            while (buffer.position() < bytes) {
                if (channel.read(buffer) < 0) {
                    throw new EOFException();
                }
            }
            buffer.flip();
        }

        int int32() throws IOException {
            need(4);
            consumed += 4;
            return buffer.getInt();
        }

        long int64() throws IOException {
            need(8);
            consumed += 8;
            return buffer.getLong();
        }

        /**
         * A count of items of at least {@code minBytes} each, in [0, 2^32]; more than the bytes left can hold is a
         * truncated file (EOFException), found before anything is allocated for them.
         */
        long count(String what, int minBytes) throws IOException {
            long n = int64();
            if (n < 0 || n > 1L << 32) {
                throw new IOException("GGUF " + what + " must be in [0, 2^32]; count=" + n + " (model=" + file + ")");
            }
            if (n > remaining() / minBytes) {
                throw new EOFException();
            }
            return n;
        }

        String string(String what) throws IOException {
            long length = int64();
            if (length < 0 || length > 1 << 24) {
                throw new IOException("GGUF " + what + " length must be in [0, 2^24]; length=" + length + " (model="
                        + file + ")");
            }
            if (length > remaining()) {
                throw new EOFException();
            }
            byte[] bytes = new byte[(int) length];
            int at = 0;
            while (at < bytes.length) {
                need(1);
                int chunk = Math.min(buffer.remaining(), bytes.length - at);
                buffer.get(bytes, at, chunk);
                at += chunk;
            }
            consumed += length;
            return new String(bytes, StandardCharsets.UTF_8);
        }

        /** An array being read: its elements so far, their type, how many are left. */
        private static final class OpenArray {
            final List<Object> elements;
            final int elementType;
            long left;

            OpenArray(int elementType, long count) {
                this.elements = new ArrayList<>((int) Math.min(count, 1024));
                this.elementType = elementType;
                this.left = count;
            }
        }

        /** The value of metadata {@code key} of {@code type}; arrays of arrays are read with a stack, not recursion. */
        Object value(int type, String key) throws IOException {
            if (type != ARRAY) {
                return scalar(type, key);
            }
            OpenArray outer = openArray(key);
            java.util.ArrayDeque<OpenArray> open = new java.util.ArrayDeque<>();
            open.push(outer);
            while (!open.isEmpty()) {
                OpenArray top = open.peek();
                if (top.left == 0) {
                    open.pop();
                    continue;
                }
                top.left--;
                if (top.elementType == ARRAY) {
                    if (open.size() >= MAX_ARRAY_DEPTH) {
                        throw new IOException("GGUF metadata arrays must nest at most " + MAX_ARRAY_DEPTH + " deep; "
                                + show(key) + ".depth=" + (open.size() + 1) + " (model=" + file + ")");
                    }
                    OpenArray inner = openArray(key);
                    top.elements.add(inner.elements);
                    open.push(inner);
                } else {
                    top.elements.add(scalar(top.elementType, key));
                }
            }
            return outer.elements;
        }

        private OpenArray openArray(String key) throws IOException {
            int elementType = int32();
            int minBytes = switch (elementType) {
                case UINT8, INT8, BOOL -> 1;
                case UINT16, INT16 -> 2;
                case UINT32, INT32, FLOAT32 -> 4;
                case UINT64, INT64, FLOAT64, STRING -> 8;
                case ARRAY -> 12;
                default -> throw badType(key, elementType);
            };
            return new OpenArray(elementType, count("metadata array " + show(key) + " length", minBytes));
        }

        private IOException badType(String key, int type) {
            return new IOException("GGUF metadata value type must be in [0, 12]; " + show(key) + ".type=" + type
                    + " (model=" + file + ")");
        }

        private Object scalar(int type, String key) throws IOException {
            switch (type) {
                case UINT8, INT8, BOOL -> {
                    need(1);
                    consumed += 1;
                    byte b = buffer.get();
                    return type == BOOL ? (Object) (b != 0) : (Object) (long) (type == UINT8 ? b & 0xFF : b);
                }
                case UINT16, INT16 -> {
                    need(2);
                    consumed += 2;
                    short s = buffer.getShort();
                    return (long) (type == UINT16 ? s & 0xFFFF : s);
                }
                case UINT32, INT32 -> {
                    int i = int32();
                    return type == UINT32 ? i & 0xFFFFFFFFL : (long) i;
                }
                case UINT64, INT64 -> {
                    return int64();
                }
                case FLOAT32 -> {
                    return (double) Float.intBitsToFloat(int32());
                }
                case FLOAT64 -> {
                    return Double.longBitsToDouble(int64());
                }
                case STRING -> {
                    return string("metadata string " + show(key));
                }
                default -> throw badType(key, type);
            }
        }
    }
}
