package io.csattention.format;

import io.csattention.core.CSAttentionIndex;
import io.csattention.core.IndexShape;
import io.csattention.core.IndexTables;
import io.csattention.core.CSAttentionSettings;
import io.csattention.core.CentroidDistance;
import io.csattention.core.FloatMatrix;
import io.csattention.core.MissingScore;
import io.csattention.core.Rope;
import io.csattention.core.RopeInfo;
import io.csattention.kernel.Kernels;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class IndexFileTest {

    private static final String GOLDEN_V1 = "/format/index-v1.csai";
    private static final String GOLDEN_V2 = "/format/index-v2-rope.csai";

    /** The head stored in the golden file (see src/test/resources/format/README.md). */
    static IndexedHead goldenHead() {
        int n = 6;
        int d = 4;
        float[] centroids = {1, 0, 0, 1, -1, 0, 0, -1};
        int[] listIds = {5, 4, 3, 0, 1, 2, 2, 3, 4, 1, 0, 5};
        float[] listScores = {0.5f, 0.4f, 0.3f, -0.25f, -0.5f, -0.75f, 2f, 1.5f, 1f, 0.125f, 0.0625f, 0f};
        float[] floors = {0.3f, -0.75f, 1f, 0f};
        float[] missing = {0.3f, -0.75f, 1f, 0f};
        CSAttentionIndex index = new CSAttentionIndex(IndexTables.withoutRope(new IndexShape(n, d, 2, 2, 3, 0.5, 42L,
                CentroidDistance.INNER_PRODUCT, MissingScore.FLOOR), centroids, listIds, listScores, floors, missing));
        float[] keys = new float[n * d];
        float[] values = new float[n * d];
        for (int i = 0; i < n * d; i++) {
            keys[i] = i * 0.5f - 3;
            values[i] = (i % 7) * 0.25f;
        }
        return new IndexedHead("ctx-\u00e9t\u00e9", 3, 1, index, new FloatMatrix(n, d, keys),
                new FloatMatrix(n, d, values));
    }

    /**
     * The head stored in the version 2 golden file: the version 1 head's shapes with a RoPE layout (half style,
     * base 10000, reference position 6, the second band position-free) and scoring centroids of their own.
     */
    static IndexedHead goldenRopeHead() {
        IndexedHead plain = goldenHead();
        CSAttentionIndex p = plain.index();
        RopeInfo rope = new RopeInfo(10_000, Rope.Style.HALF, new long[0], 6, 256, new float[] {1f, 0.01f});
        float[] scoring = {1, 0, 0, 1, -0.5f, 0.75f, 0.25f, -1};
        CSAttentionIndex index = new CSAttentionIndex(new IndexTables(p.shape(), p.centroids(), p.listIds(),
                p.listScores(), p.floors(), p.missing(), rope, new boolean[] {false, true}, scoring));
        return new IndexedHead(plain.contextId(), plain.layer(), plain.kvHead(), index, plain.keys(), plain.values());
    }

    static byte[] bytes(IndexedHead head) throws IOException {
        return bytes(head, IndexFile.VERSION_CURRENT);
    }

    static byte[] bytes(IndexedHead head, int version) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        IndexFile.write(head, out, version);
        return out.toByteArray();
    }

    static byte[] resource(String name) throws IOException {
        try (InputStream in = IndexFileTest.class.getResourceAsStream(name)) {
            return in.readAllBytes();
        }
    }

    static byte[] golden() throws IOException {
        try (InputStream in = IndexFileTest.class.getResourceAsStream(GOLDEN_V1)) {
            return in.readAllBytes();
        }
    }

    @Test
    void goldenFileOfVersion1ReadsBackAndRewritesByteForByte() throws IOException {
        byte[] golden = golden();
        IndexedHead read = IndexFile.read(new ByteArrayInputStream(golden), GOLDEN_V1);
        assertSameHead(goldenHead(), read);
        assertArrayEquals(golden, bytes(read, 1));
        assertEquals(golden.length, IndexFile.fileBytes(1, read.contextId(), 6, 4, 2, 2, 3, null));
        assertEquals(null, read.index().rope());
        byte[] current = bytes(read);
        assertEquals(golden.length + 4, current.length, "version 2 adds only the rope flag to a head without RoPE");
        assertSameHead(goldenHead(), IndexFile.read(new ByteArrayInputStream(current), "v2"));
    }

    @Test
    void goldenFileOfVersion2WithRopeReadsBackAndRewritesByteForByte() throws IOException {
        byte[] golden = resource(GOLDEN_V2);
        IndexedHead read = IndexFile.read(new ByteArrayInputStream(golden), GOLDEN_V2);
        IndexedHead expected = goldenRopeHead();
        assertSameHead(expected, read);
        RopeInfo rope = read.index().rope();
        assertEquals(10_000, rope.base());
        assertEquals(Rope.Style.HALF, rope.style());
        assertEquals(6, rope.referencePosition());
        assertEquals(256, rope.decodeSpan());
        assertArrayEquals(new float[] {1f, 0.01f}, rope.pairFrequencies());
        assertArrayEquals(new boolean[] {false, true}, read.index().positionFree());
        assertArrayEquals(expected.index().scoringCentroids(), read.index().scoringCentroids());
        assertArrayEquals(golden, bytes(read));
        assertEquals(golden.length, IndexFile.readSummary(new ByteArrayInputStream(golden), "g").fileBytes());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> bytes(read, 1));
        assertEquals("index files of version 1 do not store RoPE bands; write version 2 or later; rope-base=10000.0",
                e.getMessage());
    }

    @Test
    void builtIndexRoundTrips() throws IOException {
        long seed = 20261128L;
        System.out.println("IndexFileTest seed=" + seed);
        SplittableRandom random = new SplittableRandom(seed);
        int n = 301;
        int d = 16;
        FloatMatrix keys = randomMatrix(random, n, d);
        FloatMatrix values = randomMatrix(random, n, d);
        FloatMatrix prefill = randomMatrix(random, 97, d);
        CSAttentionIndex index = CSAttentionIndex.build(Kernels.preferred(), keys, prefill,
                CSAttentionSettings.defaults().withCentroids(8).withSubspaces(4)
                        .withMissingScore(MissingScore.MEAN_BELOW_FLOOR).withDistance(CentroidDistance.L2));
        IndexedHead head = new IndexedHead("context-7", 0, 2, index, keys, values);
        byte[] bytes = bytes(head);
        assertEquals(IndexFile.fileBytes(IndexFile.VERSION_CURRENT, "context-7", n, d, index.subspaces(),
                index.centroidCount(), index.listLength(), null), bytes.length);
        IndexedHead read = IndexFile.read(new ByteArrayInputStream(bytes), "mem");
        assertSameHead(head, read);
        IndexFileSummary summary = IndexFile.readSummary(new ByteArrayInputStream(bytes), "mem");
        assertEquals(IndexFile.VERSION_CURRENT, summary.version());
        assertEquals(bytes.length, summary.fileBytes());
        assertArrayEquals(index.centroids(), summary.centroids());
        assertEquals(CentroidDistance.L2, summary.distance());
    }

    /**
     * One bit flip that made decode allocate gigabytes: the key count of a 16-dimensional head of context "ctx-0"
     * (offset 46) set to 67,108,863. Known the length, the shapes must imply it; unknown, arrays grow with the bytes
     * read: either way one Corrupt line before the checksum, and no OutOfMemoryError (the old reader asked for two
     * 4 GiB arrays).
     */
    @Test
    void aHugeKeyCountIsCorruptBeforeAnythingIsAllocated() throws IOException {
        long seed = 46L;
        System.out.println("IndexFileTest seed=" + seed);
        SplittableRandom random = new SplittableRandom(seed);
        FloatMatrix keys = randomMatrix(random, 64, 16);
        CSAttentionIndex index = CSAttentionIndex.build(Kernels.preferred(), keys, randomMatrix(random, 32, 16),
                CSAttentionSettings.defaults().withCentroids(8).withSubspaces(4));
        byte[] bytes = bytes(new IndexedHead("ctx-0", 0, 0, index, keys, randomMatrix(random, 64, 16)));
        ByteBuffer b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals(64, b.getInt(46));
        b.putInt(46, 67_108_863);
        String shapes = "k.csai: corrupt index file: the shapes N=67108863 d=16 m=4 C=8 L=" + index.listLength()
                + " must describe the file's " + bytes.length + " bytes; they imply "
                + IndexFile.fileBytes(2, "ctx-0", 67_108_863, 16, 4, 8, index.listLength(), null);
        assertEquals(shapes, assertThrows(IndexFileException.Corrupt.class,
                () -> IndexFile.read(new ByteArrayInputStream(bytes), "k.csai", bytes.length)).getMessage());
        assertEquals(shapes, assertThrows(IndexFileException.Corrupt.class,
                () -> IndexFile.readSummary(new ByteArrayInputStream(bytes), "k.csai", bytes.length)).getMessage());
        IndexFileException.Corrupt unknown = assertThrows(IndexFileException.Corrupt.class,
                () -> IndexFile.read(new ByteArrayInputStream(bytes), "k.csai"));
        assertTrue(unknown.getMessage().matches("k\\.csai: corrupt index file: truncated \\(\\d+ bytes read\\)"),
                unknown.getMessage());
    }

    @Test
    void aLengthOtherThanTheShapesImplyIsCorrupt() throws IOException {
        byte[] bytes = golden();
        IndexFileException.Corrupt e = assertThrows(IndexFileException.Corrupt.class,
                () -> IndexFile.read(new ByteArrayInputStream(bytes), "g.csai", bytes.length - 4));
        assertTrue(e.getMessage().startsWith("g.csai: corrupt index file: the shapes N=6 d=4 m=2 C=2 L=3 must "
                + "describe the file's " + (bytes.length - 4) + " bytes; they imply " + bytes.length), e.getMessage());
    }

    @Test
    void flippedByteIsCorrupt() throws IOException {
        byte[] bytes = golden();
        bytes[bytes.length / 2] ^= 0x10;
        IndexFileException e = assertThrows(IndexFileException.Corrupt.class,
                () -> IndexFile.read(new ByteArrayInputStream(bytes), "part-0.csai"));
        assertTrue(e.getMessage().startsWith("part-0.csai: corrupt index file: checksum mismatch: file says 0x"),
                e.getMessage());
    }

    @Test
    void truncatedFileIsCorrupt() throws IOException {
        byte[] bytes = Arrays.copyOf(golden(), golden().length - 5);
        IndexFileException e = assertThrows(IndexFileException.Corrupt.class,
                () -> IndexFile.read(new ByteArrayInputStream(bytes), "x.csai"));
        assertTrue(e.getMessage().matches("x\\.csai: corrupt index file: truncated \\(\\d+ bytes read\\)"),
                e.getMessage());
    }

    @Test
    void trailingBytesAreCorrupt() throws IOException {
        byte[] bytes = Arrays.copyOf(golden(), golden().length + 1);
        IndexFileException e = assertThrows(IndexFileException.Corrupt.class,
                () -> IndexFile.read(new ByteArrayInputStream(bytes), "x.csai"));
        assertEquals("x.csai: corrupt index file: bytes follow the footer", e.getMessage());
    }

    @Test
    void otherBytesAreNotAnIndexFile() {
        byte[] bytes = "PAR1 not an index".getBytes();
        IndexFileException e = assertThrows(IndexFileException.Corrupt.class,
                () -> IndexFile.read(new ByteArrayInputStream(bytes), "y.parquet"));
        assertEquals("y.parquet: corrupt index file: magic is 0x31524150, expected 0x49415343 (not an index file)",
                e.getMessage());
    }

    @Test
    void versionsOutsideTheRangeFailTyped() throws IOException {
        byte[] newer = withVersion(golden(), IndexFile.VERSION_CURRENT + 1);
        IndexFileException.TooNew tooNew = assertThrows(IndexFileException.TooNew.class,
                () -> IndexFile.read(new ByteArrayInputStream(newer), "n.csai"));
        assertEquals("n.csai: index format version 3 is too new; this reader accepts versions 1 to 2 "
                + "(upgrade csattention-spark)", tooNew.getMessage());
        byte[] golden = golden();
        IndexFileException.TooOld tooOld = assertThrows(IndexFileException.TooOld.class,
                () -> IndexFile.read(new ByteArrayInputStream(golden), "o.csai", 2, 3));
        assertEquals("o.csai: index format version 1 is too old; this reader accepts versions 2 to 3 "
                + "(rebuild the index)", tooOld.getMessage());
        assertEquals(1, tooOld.version());
    }

    private static byte[] withVersion(byte[] file, int version) {
        byte[] copy = file.clone();
        int offset = 4 + 4 + IndexFile.FORMAT_NAME.length();
        ByteBuffer.wrap(copy).order(ByteOrder.LITTLE_ENDIAN).putInt(offset, version);
        return copy;
    }

    private static FloatMatrix randomMatrix(SplittableRandom random, int rows, int cols) {
        float[] data = new float[rows * cols];
        for (int i = 0; i < data.length; i++) {
            data[i] = (float) random.nextGaussian();
        }
        return new FloatMatrix(rows, cols, data);
    }

    static void assertSameHead(IndexedHead expected, IndexedHead actual) {
        assertEquals(expected.contextId(), actual.contextId());
        assertEquals(expected.layer(), actual.layer());
        assertEquals(expected.kvHead(), actual.kvHead());
        CSAttentionIndex e = expected.index();
        CSAttentionIndex a = actual.index();
        assertEquals(e.keys(), a.keys());
        assertEquals(e.dim(), a.dim());
        assertEquals(e.subspaces(), a.subspaces());
        assertEquals(e.centroidCount(), a.centroidCount());
        assertEquals(e.listLength(), a.listLength());
        assertEquals(e.listFraction(), a.listFraction());
        assertEquals(e.seed(), a.seed());
        assertEquals(e.distance(), a.distance());
        assertEquals(e.missingScore(), a.missingScore());
        assertArrayEquals(e.centroids(), a.centroids());
        assertArrayEquals(e.scoringCentroids(), a.scoringCentroids());
        assertArrayEquals(e.positionFree(), a.positionFree());
        assertArrayEquals(e.listIds(), a.listIds());
        assertArrayEquals(e.listScores(), a.listScores());
        assertArrayEquals(e.floors(), a.floors());
        assertArrayEquals(e.missing(), a.missing());
        assertArrayEquals(expected.keys().data(), actual.keys().data());
        assertArrayEquals(expected.values().data(), actual.values().data());
    }
}
