package io.csattention.spark;

import io.csattention.format.IndexFile;
import io.csattention.format.IndexFileException;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.FilterFileSystem;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The index set's commit, read and cleanup on the local Hadoop file system, without Spark: task files are the
 * version 1 golden index file (src/test/resources/format), staged where a task attempt would write it.
 */
class IndexSetTest {

    static final long HOUR = 3600_000L;
    static byte[] golden;
    static FileSystem fs;

    @TempDir
    Path dir;

    @BeforeAll
    static void load() throws IOException {
        try (InputStream in = IndexSetTest.class.getResourceAsStream("/format/index-v1.csai")) {
            golden = in.readAllBytes();
        }
        fs = FileSystem.getLocal(new Configuration());
    }

    static org.apache.hadoop.fs.Path hadoop(Path p) {
        return new org.apache.hadoop.fs.Path(p.toString());
    }

    /** Writes the golden head as partition 0's only file of {@code jobId}'s attempt, as a task would. */
    static IndexSet.TaskFiles stage(Path root, String jobId) throws IOException {
        Path attempt = root.resolve(IndexSet.TEMP_DIR).resolve(jobId).resolve(IndexSet.attemptDirName(0, 1));
        Files.createDirectories(attempt);
        Files.write(attempt.resolve("00000" + IndexFile.EXTENSION), golden);
        return new IndexSet.TaskFiles(0, IndexSet.attemptDirName(0, 1), List.of(new IndexSet.Entry(
                "00000" + IndexFile.EXTENSION, "ctx-\u00e9t\u00e9", 3, 1, 6, 4, golden.length,
                IndexFile.footerChecksum(golden), 1)));
    }

    static IndexSet.Manifest commit(FileSystem fs, Path root, String jobId, boolean replace, boolean requireEmpty,
                                    long graceMillis) throws IOException {
        return IndexSet.commit(fs, hadoop(root), jobId, List.of(stage(root, jobId)), replace, requireEmpty,
                Map.of(), Map.of(), graceMillis);
    }

    static String manifestJson(long commit, String file) {
        return "{\"format\":\"csattention-index-set\",\"version\":1,\"commit\":" + commit + ",\"jobId\":\"job-x\","
                + "\"heads\":[{\"file\":\"" + file + "\",\"contextId\":\"c\",\"layer\":0,\"kvHead\":0,\"keys\":6,"
                + "\"dim\":4,\"bytes\":" + golden.length + ",\"checksum\":0,\"queryHeadsPerKvHead\":1}]}";
    }

    @Test
    void aManifestNamingAFileOutsideTheIndexPathIsRefusedAndNothingOutsideIsDeleted() throws IOException {
        Path outside = Files.writeString(dir.resolve("precious.txt"), "keep me");
        Path root = dir.resolve("index");
        Files.createDirectories(root);
        Path manifest = root.resolve(IndexSet.manifestName(1));
        for (String file : new String[] {outside.toString(), "data/../../precious.txt", "file:" + outside,
                "data//x.csai", "_manifest-00000001.json"}) {
            Files.writeString(manifest, manifestJson(1, file));
            IndexSet.RefusedManifest refused = assertThrows(IndexSet.RefusedManifest.class,
                    () -> commit(fs, root, "job-overwrite", true, false, 0));
            assertEquals("index set manifest must name files under data/ of its index path (relative, no . or .. "
                    + "segments); heads[0].file=" + file + " (manifest=file:" + manifest + ")",
                    refused.getMessage());
            assertEquals("keep me", Files.readString(outside));
            assertTrue(Files.exists(manifest), "the refused manifest stays for a person to look at");
        }
        IndexSet.Entry escaping = new IndexSet.Entry(outside.toString(), "c", 0, 0, 6, 4, 7, 0, 1);
        HadoopConf conf = new HadoopConf(new Configuration());
        assertEquals("index set manifest must name files under data/ of its index path (relative, no . or .. "
                + "segments); file=" + outside + " (path=" + root + ")", assertThrows(IndexSet.RefusedManifest.class,
                        () -> IndexSet.readFile(conf, root.toString(), escaping)).getMessage());
    }

    @Test
    void aTornNewestManifestIsSkippedAndTheNextCommitTakesTheNumberAfterIt() throws IOException {
        Path root = dir.resolve("index");
        IndexSet.Manifest first = commit(fs, root, "job-1", false, true, HOUR);
        assertEquals(1, first.commit());
        Files.write(root.resolve(IndexSet.manifestName(2)), new byte[0]);
        IndexSet.Manifest read = IndexSet.latest(fs, hadoop(root)).orElseThrow();
        assertEquals("job-1", read.jobId());
        HadoopConf conf = new HadoopConf(new Configuration());
        IndexSet.Entry head = read.heads().get(0);
        assertArrayEquals(golden, IndexSet.readFile(conf, root.toString(), head));
        assertEquals(6, IndexSet.parse(root.toString(), head, golden).index().keys());

        IndexSet.Manifest next = commit(fs, root, "job-2", true, false, HOUR);
        assertEquals(3, next.commit());
        assertEquals("job-2", IndexSet.latest(fs, hadoop(root)).orElseThrow().jobId());
        assertTrue(Files.exists(root.resolve("data").resolve("job-1")), "replaced files stay for the grace period");
    }

    @Test
    void manifestErrorsAreOneLineNamingTheManifest() throws IOException {
        String name = "/x/_manifest-00000004.json";
        byte[] json = manifestJson(4, "data/j/p/0.csai").getBytes(StandardCharsets.UTF_8);
        assertEquals(4, IndexSet.parseManifest(json, name, 4).commit());
        assertEquals("index set manifest must be a complete csattention-index-set document; length=0 (a torn "
                + "write?) (manifest=" + name + ")", corrupt(new byte[0], name, 4));
        assertEquals("index set manifest must be a complete csattention-index-set document; JSON error at byte 40: "
                + "Unexpected end-of-input in field name (manifest=" + name + ")", corrupt(java.util.Arrays.copyOf(json, 40), name, 4));
        assertEquals("index set manifest must be a complete csattention-index-set document; commit must be the "
                + "number in its name 5; commit=4 (manifest=" + name + ")", corrupt(json, name, 5));
        byte[] noKeys = manifestJson(4, "data/j/p/0.csai").replace("\"keys\":6", "\"keys\":-6")
                .getBytes(StandardCharsets.UTF_8);
        assertEquals("index set manifest must be a complete csattention-index-set document; heads[0]: keys=-6 "
                + "(manifest=" + name + ")", corrupt(noKeys, name, 4));
        byte[] newer = manifestJson(4, "data/j/p/0.csai").replace("\"version\":1", "\"version\":2")
                .getBytes(StandardCharsets.UTF_8);
        assertEquals("index set manifest version must be 1 to 1 (upgrade csattention-spark); version=2 (manifest="
                + name + ")", assertThrows(IndexSet.RefusedManifest.class,
                        () -> IndexSet.parseManifest(newer, name, 4)).getMessage());
    }

    private static String corrupt(byte[] bytes, String name, long number) {
        String message = assertThrows(IndexSet.CorruptManifest.class,
                () -> IndexSet.parseManifest(bytes, name, number)).getMessage();
        assertFalse(message.contains("\n"), message);
        return message;
    }

    @Test
    void aTruncatedIndexFileIsReportedAsShorterThanItsManifestSays() throws IOException {
        Path root = dir.resolve("index");
        IndexSet.Manifest built = commit(fs, root, "job-1", false, true, HOUR);
        IndexSet.Entry head = built.heads().get(0);
        Path file = root.resolve(head.file());
        Files.write(file, java.util.Arrays.copyOf(golden, 100));
        HadoopConf conf = new HadoopConf(new Configuration());
        IndexFileException.Corrupt e = assertThrows(IndexFileException.Corrupt.class,
                () -> IndexSet.readFile(conf, root.toString(), head));
        assertEquals(file + ": corrupt index file: the file must be the " + golden.length
                + " bytes its manifest recorded; length=100 (truncated or replaced after commit?)", e.getMessage());
    }

    /**
     * Two writers that read the same (empty) path race for commit 1 in errorifexists mode, 100 times (system property
     * csattention.raceTrials for more): exactly one commits each time, the other fails with one line. Hadoop's local
     * create(overwrite=false) checks, then creates, and its rename replaces: with those, both commit in a few percent
     * of trials; the hard link the commit uses is exclusive.
     */
    @Test
    void ofTwoConcurrentWritersExactlyOneCommits() throws Exception {
        int trials = Integer.getInteger("csattention.raceTrials", 100);
        System.out.println("IndexSetTest race trials=" + trials);
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try {
            for (int trial = 0; trial < trials; trial++) {
                Path root = dir.resolve("race-" + trial);
                IndexSet.TaskFiles a = stage(root, "job-a");
                IndexSet.TaskFiles b = stage(root, "job-b");
                CyclicBarrier start = new CyclicBarrier(2);
                List<Future<IndexSet.Manifest>> runs = new ArrayList<>();
                for (String job : new String[] {"job-a", "job-b"}) {
                    IndexSet.TaskFiles task = job.equals("job-a") ? a : b;
                    runs.add(pool.submit(() -> {
                        start.await();
                        return IndexSet.commit(fs, hadoop(root), job, List.of(task), false, true, Map.of(), Map.of(),
                                HOUR);
                    }));
                }
                int committed = 0;
                List<String> failures = new ArrayList<>();
                for (Future<IndexSet.Manifest> run : runs) {
                    try {
                        run.get();
                        committed++;
                    } catch (java.util.concurrent.ExecutionException e) {
                        failures.add(e.getCause().getClass().getSimpleName() + ": " + e.getCause().getMessage());
                    }
                }
                assertEquals(1, committed, "trial " + trial + ": " + failures);
                assertEquals(List.of("CommitConflict: index path already holds an index set (use mode overwrite or "
                        + "append); path=" + root), failures, "trial " + trial);
                assertEquals(1, IndexSet.manifestFiles(fs, hadoop(root)).size(), "trial " + trial);
            }
        } finally {
            pool.shutdownNow();
        }
    }

    /** Four overwrite writers racing, 25 times: every commit number is claimed once and no manifest is lost. */
    @Test
    void racingOverwritesNeverShareACommitNumber() throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            for (int trial = 0; trial < 25; trial++) {
                Path root = dir.resolve("overwrite-" + trial);
                CyclicBarrier start = new CyclicBarrier(4);
                List<Future<IndexSet.Manifest>> runs = new ArrayList<>();
                for (int w = 0; w < 4; w++) {
                    String job = "job-" + w;
                    IndexSet.TaskFiles task = stage(root, job);
                    runs.add(pool.submit(() -> {
                        start.await();
                        return IndexSet.commit(fs, hadoop(root), job, List.of(task), true, false, Map.of(), Map.of(),
                                HOUR);
                    }));
                }
                List<Long> numbers = new ArrayList<>();
                for (Future<IndexSet.Manifest> run : runs) {
                    try {
                        numbers.add(run.get().commit());
                    } catch (java.util.concurrent.ExecutionException e) {
                        assertTrue(e.getCause() instanceof IndexSet.CommitConflict, String.valueOf(e.getCause()));
                        assertTrue(e.getCause().getMessage().startsWith("index set must be committed by one writer "
                                + "at a time; another build committed _manifest-"), e.getCause().getMessage());
                    }
                }
                assertFalse(numbers.isEmpty());
                assertEquals(numbers.size(), numbers.stream().distinct().count(), "trial " + trial + ": " + numbers);
                assertEquals(numbers.size(), IndexSet.manifestFiles(fs, hadoop(root)).size(), "trial " + trial);
            }
        } finally {
            pool.shutdownNow();
        }
    }

    /** The claim on a file system that is not the local one: rename, refused when the name exists, then read back. */
    @Test
    void theRenameClaimRefusesATakenNumber() throws IOException {
        FileSystem other = new FilterFileSystem(fs);
        Path root = dir.resolve("index");
        for (String job : new String[] {"job-a", "job-b"}) {
            Path written = root.resolve(IndexSet.TEMP_DIR).resolve(job).resolve(IndexSet.manifestName(1));
            Files.createDirectories(written.getParent());
            Files.writeString(written, manifestJson(1, "data/" + job + "/part-00000/00000.csai")
                    .replace("job-x", job));
            assertEquals(job.equals("job-a"), IndexSet.claim(other, hadoop(root), hadoop(written), 1, job), job);
        }
        assertEquals("job-a", IndexSet.latest(fs, hadoop(root)).orElseThrow().jobId());
    }

    @Test
    void replacedFilesAreRemovedOnlyAfterTheGracePeriod() throws IOException {
        Path root = dir.resolve("index");
        commit(fs, root, "job-1", false, true, 0);
        commit(fs, root, "job-2", true, false, HOUR);
        assertTrue(Files.exists(root.resolve("data").resolve("job-1")));
        assertTrue(Files.exists(root.resolve(IndexSet.manifestName(1))));
        // commit 2 written two hours ago: manifest 1, which it replaced then, is past the grace and goes with its
        // files; manifest 2, replaced by commit 3 just now, stays with its files
        IndexSet.Manifest third = commit(fs, root, "job-3", true, false, HOUR);
        Files.setLastModifiedTime(root.resolve(IndexSet.manifestName(2)),
                java.nio.file.attribute.FileTime.fromMillis(System.currentTimeMillis() - 2 * HOUR));
        IndexSet.clean(fs, hadoop(root), third, HOUR, System.currentTimeMillis());
        assertFalse(Files.exists(root.resolve("data").resolve("job-1")));
        assertFalse(Files.exists(root.resolve(IndexSet.manifestName(1))));
        assertTrue(Files.exists(root.resolve("data").resolve("job-2")), "commit 3 replaced 2 just now");
        assertTrue(Files.exists(root.resolve("data").resolve("job-3")));
        assertEquals("job-3", IndexSet.latest(fs, hadoop(root)).orElseThrow().jobId());

        IndexSet.Manifest fourth = commit(fs, root, "job-4", true, false, 0);
        assertFalse(Files.exists(root.resolve("data").resolve("job-2")));
        assertFalse(Files.exists(root.resolve("data").resolve("job-3")), "grace 0: the replaced set goes at once");
        assertEquals(List.of(4L), IndexSet.manifestFiles(fs, hadoop(root)).stream()
                .map(IndexSet.ManifestFile::number).toList());
        assertEquals(fourth.jobId(), IndexSet.latest(fs, hadoop(root)).orElseThrow().jobId());
    }

    @Test
    void filesNoManifestNamesAreRemovedOnlyWhenADayOld() throws IOException {
        Path root = dir.resolve("index");
        Path killed = Files.createDirectories(root.resolve("data").resolve("job-killed").resolve("part-00000"));
        Path running = Files.createDirectories(root.resolve("data").resolve("job-running").resolve("part-00000"));
        Path killedTemp = Files.createDirectories(root.resolve(IndexSet.TEMP_DIR).resolve("job-killed-2"));
        Path runningTemp = Files.createDirectories(root.resolve(IndexSet.TEMP_DIR).resolve("job-running-2"));
        long dayAgo = System.currentTimeMillis() - 25 * HOUR;
        for (Path old : new Path[] {killed.getParent(), killedTemp}) {
            Files.setLastModifiedTime(old, java.nio.file.attribute.FileTime.fromMillis(dayAgo));
        }
        IndexSet.Manifest built = commit(fs, root, "job-1", false, true, 0);
        assertFalse(Files.exists(killed));
        assertFalse(Files.exists(killedTemp));
        assertTrue(Files.exists(running), "a younger directory may belong to a build still running");
        assertTrue(Files.exists(runningTemp));
        assertEquals(built.jobId(), IndexSet.latest(fs, hadoop(root)).orElseThrow().jobId());
    }

    @Test
    void theGracePeriodMustBeANonNegativeNumberOfSeconds() {
        Configuration conf = new Configuration(false);
        assertEquals(24 * HOUR, IndexSet.graceMillis(conf));
        conf.set(IndexSet.GRACE_SECONDS, "-5");
        assertEquals("csattention.indexSet.graceSeconds must be an integer number of seconds >= 0; "
                + "csattention.indexSet.graceSeconds=-5", assertThrows(IllegalArgumentException.class,
                        () -> IndexSet.graceMillis(conf)).getMessage());
    }
}
