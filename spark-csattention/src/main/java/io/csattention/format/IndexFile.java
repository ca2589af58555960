package io.csattention.format;

import io.csattention.core.CSAttentionIndex;
import io.csattention.core.IndexShape;
import io.csattention.core.IndexTables;
import io.csattention.core.Check;
import io.csattention.core.CentroidDistance;
import io.csattention.core.FloatMatrix;
import io.csattention.core.MissingScore;
import io.csattention.core.Rope;
import io.csattention.core.RopeInfo;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.zip.CRC32;

/**
 * The on-disk format of one {@link IndexedHead} (file extension {@value #EXTENSION}), in the way of Lucene's codecs:
 * a header naming the format and its version, the body, and a footer with a CRC32 of everything before it. This
 * class owns every constant of the format. All numbers are little-endian; strings are an int32 byte length followed
 * by UTF-8 bytes.
 *
 * <pre>
 * header    int32   magic             0x49415343 (the bytes "CSAI" on disk)
 *           string  format name       "csattention-index"
 *           int32   version           2 (1 is read too: it has no RoPE section and no scoring centroids)
 * metadata  string  context_id
 *           int32   layer, kv_head
 *           int32   N (keys), d (head dim), m (subspaces), C (centroids per subspace), L (list length)
 *           float64 alpha (list fraction)
 *           int64   seed
 *           int32   distance          0 inner product, 1 L2
 *           int32   missing score     0 floor, 1 mean below floor, 2 zero
 * rope      int32   present           v2 only: 0 the head was indexed without RoPE (nothing else follows here), 1
 *           float64 base              RoPE base
 *           int32   style             0 interleaved (2p, 2p+1), 1 half (p, p + d/2)
 *           int64   reference position the position the position-free lists are scored at
 *           int32   decode span       positions after the reference a band must stay slow over
 *           int32   F                 pair frequencies given: -1 for base^(-2p/d), else F float32 values follow
 *           float32 pair frequencies  [F]
 *           int32   position-free     [m] 1 for a slow band clustered de-rotated, 0 for a band kept as it is
 * tables    float32 centroids         [m, C, d/m] (with RoPE: in the pair-contiguous layout, slow bands
 *                                     position-free)
 *           float32 scoring centroids [m, C, d/m] v2 with RoPE only: slow bands rotated to the reference position
 *           float32 floors            [m, C]
 *           float32 missing           [m, C]      the estimate a key absent from a chosen list contributes
 *           int32   list ids          [m, C, L]   each list by descending partial score
 *           float32 list scores       [m, C, L]
 * kv        float32 keys              [N, d]
 *           float32 values            [N, d]
 * footer    int32   footer magic      ~magic
 *           int32   checksum algorithm 0 (CRC32)
 *           int64   checksum          CRC32 of every byte before the footer magic
 * </pre>
 *
 * <p>The metadata and centroid tables come first so that {@link #readSummary} (what the Spark driver broadcasts)
 * reads a short prefix. Keys streamed into an index after its build are not part of the format: {@link #write}
 * refuses such an index.
 */
public final class IndexFile {

    public static final int MAGIC = 0x49415343;
    public static final int FOOTER_MAGIC = ~MAGIC;
    public static final String FORMAT_NAME = "csattention-index";
    public static final int VERSION_START = 1;
    /** The first version whose files can carry the RoPE layout. */
    public static final int VERSION_ROPE = 2;
    public static final int VERSION_CURRENT = 2;
    public static final int CHECKSUM_CRC32 = 0;
    public static final String EXTENSION = ".csai";
    /** Bytes of the footer: footer magic, algorithm id, checksum. */
    public static final int FOOTER_BYTES = 16;

    /** The length argument of a reader that does not know the file's length. */
    public static final long UNKNOWN_LENGTH = -1;

    private static final int MAX_STRING_BYTES = 1 << 16;
    private static final int CHUNK = 1 << 16;

    private IndexFile() {
    }

    /** Writes {@code head} in the current version and returns the footer's checksum; does not close {@code out}. */
    public static long write(IndexedHead head, OutputStream out) throws IOException {
        return write(head, out, VERSION_CURRENT);
    }

    /**
     * Writes {@code head} in {@code version} (1 or 2; version 1 only for an index without RoPE, as older readers
     * expect) and returns the footer's checksum; does not close {@code out}.
     */
    public static long write(IndexedHead head, OutputStream out, int version) throws IOException {
        CSAttentionIndex index = head.index();
        Check.that(version >= VERSION_START && version <= VERSION_CURRENT,
                "index file version must be in [" + VERSION_START + ", " + VERSION_CURRENT + "]", "version", version);
        if (index.rope() != null && version < VERSION_ROPE) {
            throw new IllegalArgumentException("index files of version " + version + " do not store RoPE bands; "
                    + "write version " + VERSION_ROPE + " or later; rope-base=" + index.rope().base());
        }
        Check.that(!index.listsDropped(), "an index whose lists were dropped after packing cannot be written",
                "lists.length", 0);
        if (index.streamedBytes() != 0) {
            throw new IllegalArgumentException("index must not hold streamed keys to be written; streamed bytes="
                    + index.streamedBytes());
        }
        Writer w = new Writer(out);
        w.int32(MAGIC);
        w.string(FORMAT_NAME);
        w.int32(version);
        w.string(head.contextId());
        w.int32(head.layer());
        w.int32(head.kvHead());
        w.int32(index.keys());
        w.int32(index.dim());
        w.int32(index.subspaces());
        w.int32(index.centroidCount());
        w.int32(index.listLength());
        w.float64(index.listFraction());
        w.int64(index.seed());
        w.int32(distanceCode(index.distance()));
        w.int32(missingCode(index.missingScore()));
        RopeInfo rope = index.rope();
        if (version >= VERSION_ROPE) {
            w.int32(rope == null ? 0 : 1);
            if (rope != null) {
                w.float64(rope.base());
                w.int32(rope.style().ordinal());
                w.int64(rope.referencePosition());
                w.int32(rope.decodeSpan());
                float[] frequencies = rope.pairFrequencies();
                w.int32(frequencies == null ? -1 : frequencies.length);
                if (frequencies != null) {
                    w.floats(frequencies, frequencies.length);
                }
                for (boolean free : index.positionFree()) {
                    w.int32(free ? 1 : 0);
                }
            }
        }
        w.floats(index.centroids(), index.centroids().length);
        if (rope != null) {
            w.floats(index.scoringCentroids(), index.scoringCentroids().length);
        }
        w.floats(index.floors(), index.floors().length);
        w.floats(index.missing(), index.missing().length);
        w.ints(index.listIds(), index.listIds().length);
        w.floats(index.listScores(), index.listScores().length);
        w.floats(head.keys().data(), head.keys().rows() * head.keys().cols());
        w.floats(head.values().data(), head.values().rows() * head.values().cols());
        w.drain();
        long checksum = w.crc.getValue();
        w.int32(FOOTER_MAGIC);
        w.int32(CHECKSUM_CRC32);
        w.int64(checksum);
        w.flush();
        return checksum;
    }

    /** The checksum a whole file held in memory declares in its footer (not verified; {@link #read} does that). */
    public static long footerChecksum(byte[] file) {
        if (file.length < FOOTER_BYTES) {
            return -1;
        }
        return ByteBuffer.wrap(file, file.length - 8, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
    }

    /** Reads a whole file of the current version range and checks its checksum; {@code name} is used in errors. */
    public static IndexedHead read(InputStream in, String name) throws IOException {
        return read(in, name, VERSION_START, VERSION_CURRENT, UNKNOWN_LENGTH);
    }

    /**
     * Reads a whole file of {@code length} bytes: every size in the file is checked against the bytes that remain
     * before anything is allocated.
     */
    public static IndexedHead read(InputStream in, String name, long length) throws IOException {
        return read(in, name, VERSION_START, VERSION_CURRENT, length);
    }

    /**
     * Reads a whole file whose version is in [{@code minVersion}, {@code maxVersion}], checks its checksum and that
     * nothing follows the footer.
     */
    public static IndexedHead read(InputStream in, String name, int minVersion, int maxVersion) throws IOException {
        return read(in, name, minVersion, maxVersion, UNKNOWN_LENGTH);
    }

    /**
     * Reads a whole file whose version is in [{@code minVersion}, {@code maxVersion}], checks its checksum and that
     * nothing follows the footer. With a known {@code length} (else {@link #UNKNOWN_LENGTH}) the shapes must imply
     * exactly that many bytes; without, arrays grow with the bytes actually read, so a damaged size ends in a
     * truncation error, not in a large allocation.
     */
    private static IndexedHead read(InputStream in, String name, int minVersion, int maxVersion, long length)
            throws IOException {
        Reader r = new Reader(in, name, length);
        try {
            IndexFileSummary s = readSummary(r, minVersion, maxVersion);
            int lists = s.subspaces() * s.centroidCount();
            float[] floors = r.floats(lists, "floors [m, C]");
            float[] missing = r.floats(lists, "missing [m, C]");
            int[] listIds = r.ints(r.count((long) lists * s.listLength(), "m*C*L"), "list ids [m, C, L]");
            float[] listScores = r.floats(listIds.length, "list scores [m, C, L]");
            int kvFloats = r.count((long) s.keys() * s.dim(), "N*d");
            float[] keys = r.floats(kvFloats, "keys [N, d]");
            float[] values = r.floats(kvFloats, "values [N, d]");
            long expected = r.crc.getValue();
            int footerMagic = r.int32();
            if (footerMagic != FOOTER_MAGIC) {
                throw r.corrupt("footer magic is 0x" + Integer.toHexString(footerMagic) + ", expected 0x"
                        + Integer.toHexString(FOOTER_MAGIC));
            }
            int algorithm = r.int32();
            if (algorithm != CHECKSUM_CRC32) {
                throw r.corrupt("checksum algorithm " + algorithm + " is unknown, expected " + CHECKSUM_CRC32);
            }
            long actual = r.int64();
            if (actual != expected) {
                throw r.corrupt("checksum mismatch: file says 0x" + Long.toHexString(actual) + ", content is 0x"
                        + Long.toHexString(expected));
            }
            if (r.in.read() != -1) {
                throw r.corrupt("bytes follow the footer");
            }
            for (int id : listIds) {
                if (id < 0 || id >= s.keys()) {
                    throw r.corrupt("list id " + id + " is outside [0, " + s.keys() + ")");
                }
            }
            IndexShape shape = new IndexShape(s.keys(), s.dim(), s.subspaces(), s.centroidCount(), s.listLength(),
                    s.listFraction(), s.seed(), s.distance(), s.missingScore());
            CSAttentionIndex index = new CSAttentionIndex(s.rope() == null
                    ? IndexTables.withoutRope(shape, s.centroids(), listIds, listScores, floors, missing)
                    : new IndexTables(shape, s.centroids(), listIds, listScores, floors, missing, s.rope(),
                            s.positionFree(), s.scoringCentroids()));
            return new IndexedHead(s.contextId(), s.layer(), s.kvHead(), index,
                    new FloatMatrix(s.keys(), s.dim(), keys), new FloatMatrix(s.keys(), s.dim(), values));
        } catch (EOFException e) {
            throw r.corrupt("truncated (" + r.position + " bytes read)");
        }
    }

    /**
     * Reads the header, metadata and centroid tables of a file of the current version range. The checksum is not
     * verified (it covers the whole file); the shapes are.
     */
    public static IndexFileSummary readSummary(InputStream in, String name) throws IOException {
        return readSummary(in, name, UNKNOWN_LENGTH);
    }

    /**
     * {@link #readSummary(InputStream, String)} of a file of {@code length} bytes ({@link #UNKNOWN_LENGTH}: not
     * known): the shapes must imply exactly that many bytes.
     */
    public static IndexFileSummary readSummary(InputStream in, String name, long length) throws IOException {
        Reader r = new Reader(in, name, length);
        try {
            return readSummary(r, VERSION_START, VERSION_CURRENT);
        } catch (EOFException e) {
            throw r.corrupt("truncated (" + r.position + " bytes read)");
        }
    }

    private static IndexFileSummary readSummary(Reader r, int minVersion, int maxVersion) throws IOException {
        int magic = r.int32();
        if (magic != MAGIC) {
            throw r.corrupt("magic is 0x" + Integer.toHexString(magic) + ", expected 0x" + Integer.toHexString(MAGIC)
                    + " (not an index file)");
        }
        String format = r.string();
        if (!FORMAT_NAME.equals(format)) {
            throw r.corrupt("format name is '" + Printable.of(format, 64) + "', expected '" + FORMAT_NAME + "'");
        }
        int version = r.int32();
        if (version < minVersion) {
            throw new IndexFileException.TooOld(r.name, version, minVersion, maxVersion);
        }
        if (version > maxVersion) {
            throw new IndexFileException.TooNew(r.name, version, minVersion, maxVersion);
        }
        String contextId = r.string();
        int layer = r.nonNegative("layer");
        int kvHead = r.nonNegative("kv_head");
        int keys = r.positive("N");
        int dim = r.positive("d");
        int subspaces = r.positive("m");
        int centroidCount = r.positive("C");
        int listLength = r.positive("L");
        if (dim % subspaces != 0 || listLength > keys) {
            throw r.corrupt("inconsistent shapes N=" + keys + " d=" + dim + " m=" + subspaces + " L=" + listLength);
        }
        double listFraction = r.float64();
        long seed = r.int64();
        CentroidDistance distance = r.code(CentroidDistance.values(), "distance");
        MissingScore missingScore = r.code(MissingScore.values(), "missing score");
        RopeInfo rope = null;
        boolean[] positionFree = new boolean[subspaces];
        if (version >= VERSION_ROPE) {
            int present = r.int32();
            if (present != 0 && present != 1) {
                throw r.corrupt("rope flag must be 0 or 1; rope=" + present);
            }
            if (present == 1) {
                double base = r.float64();
                Rope.Style style = r.code(Rope.Style.values(), "rope style");
                long reference = r.int64();
                int span = r.positive("decode span");
                int pairs = r.int32();
                if (pairs < -1 || pairs > dim / 2) {
                    throw r.corrupt("pair frequencies must be -1 or in [0, " + dim / 2 + "]; F=" + pairs);
                }
                float[] frequencies = pairs < 0 ? null : r.floats(pairs, "pair frequencies [F]");
                if (!(base > 1) || reference < 0 || (dim / subspaces) % 2 != 0) {
                    throw r.corrupt("inconsistent rope section base=" + base + " reference=" + reference + " d/m="
                            + dim / subspaces);
                }
                for (int j = 0; j < subspaces; j++) {
                    int flag = r.int32();
                    if (flag != 0 && flag != 1) {
                        throw r.corrupt("position-free flag must be 0 or 1; position-free[" + j + "]=" + flag);
                    }
                    positionFree[j] = flag == 1;
                }
                rope = new RopeInfo(base, style, new long[0], reference, span, frequencies);
            }
        }
        if (r.length != UNKNOWN_LENGTH) {
            long implied = fileBytes(version, contextId, keys, dim, subspaces, centroidCount, listLength, rope);
            if (implied != r.length) {
                throw r.corrupt("the shapes N=" + keys + " d=" + dim + " m=" + subspaces + " C=" + centroidCount
                        + " L=" + listLength + " must describe the file's " + r.length + " bytes; they imply "
                        + implied);
            }
        }
        int tableFloats = r.count((long) subspaces * centroidCount * (dim / subspaces), "m*C*d/m");
        float[] centroids = r.floats(tableFloats, "centroids [m, C, d/m]");
        float[] scoringCentroids = rope == null ? centroids : r.floats(tableFloats, "scoring centroids [m, C, d/m]");
        return new IndexFileSummary(version, contextId, layer, kvHead, keys, dim, subspaces, centroidCount,
                listLength, listFraction, seed, distance, missingScore, centroids, rope, positionFree,
                scoringCentroids);
    }

    /**
     * Bytes of a file of {@code version} with these shapes; {@code rope} (null: none) and its {@code pairFrequencies}
     * count only from version 2 on.
     */
    public static long fileBytes(int version, String contextId, int keys, int dim, int subspaces, int centroidCount,
                                 int listLength, RopeInfo rope) {
        long header = 4 + 4 + FORMAT_NAME.getBytes(StandardCharsets.UTF_8).length + 4;
        long metadata = 4 + contextId.getBytes(StandardCharsets.UTF_8).length + 7 * 4 + 8 + 8 + 2 * 4;
        long lists = (long) subspaces * centroidCount;
        long centroidBytes = 4L * lists * (dim / subspaces);
        long ropeBytes = 0;
        if (version >= VERSION_ROPE) {
            ropeBytes = 4;
            if (rope != null) {
                int frequencies = rope.pairFrequencies() == null ? 0 : rope.pairFrequencies().length;
                ropeBytes += 8 + 4 + 8 + 4 + 4 + 4L * frequencies + 4L * subspaces + centroidBytes;
            }
        }
        long tables = centroidBytes + 8L * lists + 8L * lists * listLength;
        return header + metadata + ropeBytes + tables + 8L * keys * dim + FOOTER_BYTES;
    }

    private static int distanceCode(CentroidDistance distance) {
        return distance.ordinal();
    }

    private static int missingCode(MissingScore missing) {
        return missing.ordinal();
    }

    /** Little-endian writes through a CRC32. */
    private static final class Writer {
        final CRC32 crc = new CRC32();
        final OutputStream out;
        final ByteBuffer buffer = ByteBuffer.allocate(CHUNK).order(ByteOrder.LITTLE_ENDIAN);

        Writer(OutputStream out) {
            this.out = out instanceof BufferedOutputStream ? out : new BufferedOutputStream(out, CHUNK);
        }

        void room(int bytes) throws IOException {
            if (buffer.remaining() < bytes) {
                drain();
            }
        }

        void drain() throws IOException {
            crc.update(buffer.array(), 0, buffer.position());
            out.write(buffer.array(), 0, buffer.position());
            buffer.clear();
        }

        void int32(int v) throws IOException {
            room(4);
            buffer.putInt(v);
        }

        void int64(long v) throws IOException {
            room(8);
            buffer.putLong(v);
        }

        void float64(double v) throws IOException {
            room(8);
            buffer.putDouble(v);
        }

        void string(String s) throws IOException {
            byte[] bytes = s.getBytes(StandardCharsets.UTF_8);
            if (bytes.length > MAX_STRING_BYTES) {
                throw new IllegalArgumentException("strings in index files must be at most " + MAX_STRING_BYTES
                        + " UTF-8 bytes; length=" + bytes.length);
            }
            int32(bytes.length);
            room(bytes.length);
            buffer.put(bytes);
        }

        void floats(float[] data, int count) throws IOException {
            int done = 0;
            while (done < count) {
                room(4);
                int n = Math.min(count - done, buffer.remaining() / 4);
                buffer.asFloatBuffer().put(data, done, n);
                buffer.position(buffer.position() + 4 * n);
                done += n;
            }
        }

        void ints(int[] data, int count) throws IOException {
            int done = 0;
            while (done < count) {
                room(4);
                int n = Math.min(count - done, buffer.remaining() / 4);
                buffer.asIntBuffer().put(data, done, n);
                buffer.position(buffer.position() + 4 * n);
                done += n;
            }
        }

        void flush() throws IOException {
            drain();
            out.flush();
        }
    }

    /** Little-endian reads through a CRC32, counting bytes for error messages. */
    private static final class Reader {
        final CRC32 crc = new CRC32();
        final InputStream in;
        final String name;
        /** The file's bytes, or UNKNOWN_LENGTH. */
        final long length;
        final ByteBuffer buffer = ByteBuffer.allocate(CHUNK).order(ByteOrder.LITTLE_ENDIAN);
        long position;

        Reader(InputStream in, String name, long length) {
            this.in = in instanceof BufferedInputStream ? in : new BufferedInputStream(in, CHUNK);
            this.name = name;
            this.length = length;
        }

        /**
         * The array length to allocate for {@code count} 4-byte elements of {@code field}: all of them when the
         * file's length is known (and they fit before the footer), else at most a chunk more than was read so far.
         */
        int firstAllocation(int count, String field) throws IOException {
            if (length != UNKNOWN_LENGTH) {
                long left = length - FOOTER_BYTES - position;
                if (4L * count > left) {
                    throw corrupt(field + " must fit in the " + Math.max(left, 0) + " bytes left before the footer "
                            + "at offset " + position + "; elements=" + count);
                }
                return count;
            }
            return (int) Math.min(count, Math.max(CHUNK / 4, position / 4));
        }

        IndexFileException.Corrupt corrupt(String problem) {
            return new IndexFileException.Corrupt(name, problem);
        }

        /** Reads exactly {@code bytes} (at most CHUNK) into the buffer, ready to get. */
        ByteBuffer fill(int bytes) throws IOException {
            buffer.clear();
            int done = 0;
            while (done < bytes) {
                int n = in.read(buffer.array(), done, bytes - done);
                if (n < 0) {
                    throw new EOFException();
                }
                done += n;
            }
            crc.update(buffer.array(), 0, bytes);
            position += bytes;
            buffer.limit(bytes);
            return buffer;
        }

        int int32() throws IOException {
            return fill(4).getInt();
        }

        long int64() throws IOException {
            return fill(8).getLong();
        }

        double float64() throws IOException {
            return fill(8).getDouble();
        }

        int positive(String what) throws IOException {
            int v = int32();
            if (v <= 0) {
                throw corrupt(what + " must be > 0; " + what + "=" + v);
            }
            return v;
        }

        int nonNegative(String what) throws IOException {
            int v = int32();
            if (v < 0) {
                throw corrupt(what + " must be >= 0; " + what + "=" + v);
            }
            return v;
        }

        int count(long count, String what) throws IOException {
            if (count > Integer.MAX_VALUE - 16) {
                throw corrupt(what + " must fit in a Java array; " + what + "=" + count);
            }
            return (int) count;
        }

        <E extends Enum<E>> E code(E[] values, String what) throws IOException {
            int code = int32();
            if (code < 0 || code >= values.length) {
                throw corrupt(what + " code " + code + " is unknown");
            }
            return values[code];
        }

        String string() throws IOException {
            int length = int32();
            if (length < 0 || length > MAX_STRING_BYTES) {
                throw corrupt("string length " + length + " is outside [0, " + MAX_STRING_BYTES + "]");
            }
            byte[] bytes = new byte[length];
            fill(length).get(bytes);
            return new String(bytes, StandardCharsets.UTF_8);
        }

        float[] floats(int count, String field) throws IOException {
            float[] out = new float[firstAllocation(count, field)];
            int done = 0;
            while (done < count) {
                if (done == out.length) {
                    out = java.util.Arrays.copyOf(out, (int) Math.min(count, 2L * out.length));
                }
                int n = Math.min(out.length - done, CHUNK / 4);
                fill(n * 4).asFloatBuffer().get(out, done, n);
                done += n;
            }
            return out;
        }

        int[] ints(int count, String field) throws IOException {
            int[] out = new int[firstAllocation(count, field)];
            int done = 0;
            while (done < count) {
                if (done == out.length) {
                    out = java.util.Arrays.copyOf(out, (int) Math.min(count, 2L * out.length));
                }
                int n = Math.min(out.length - done, CHUNK / 4);
                fill(n * 4).asIntBuffer().get(out, done, n);
                done += n;
            }
            return out;
        }
    }
}
