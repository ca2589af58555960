package io.csattention.spark;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.csattention.format.IndexFile;
import io.csattention.format.IndexFileException;
import io.csattention.format.IndexedHead;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

import java.io.ByteArrayInputStream;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The layout of an index set under one Hadoop FileSystem path, and its atomic commit.
 *
 * <pre>
 * PATH/_manifest-00000001.json   the committed index set, one manifest per successful write; readers take the
 *                                highest number and accept nothing else
 * PATH/data/JOB/part-P/S.csai    index files ({@link IndexFile}) named by manifests
 * PATH/_temporary/JOB/P-TASK/    a task attempt's files while the job runs
 * </pre>
 *
 * <p>A write job's tasks write under {@code _temporary}; the job commit renames each committed task's directory into
 * {@code data/}, then creates the next manifest with {@code overwrite=false} (so two concurrent writers cannot both
 * commit), then deletes {@code _temporary/JOB}. A job that fails at any point before the manifest is created leaves
 * no manifest naming its files, so readers see the previous index set or none.
 */
public final class IndexSet {

    public static final String MANIFEST_PREFIX = "_manifest-";
    public static final String MANIFEST_SUFFIX = ".json";
    public static final String DATA_DIR = "data";
    public static final String TEMP_DIR = "_temporary";
    public static final String FORMAT = "csattention-index-set";
    public static final int VERSION = 1;

    private static final ObjectMapper JSON = new ObjectMapper()
            .configure(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES, false);

    private IndexSet() {
    }

    /** One committed index file. */
    /**
     * One head of a manifest. {@code queryHeadsPerKvHead} is the GQA group size recorded at build time (query head h
     * reads KV head h / it); 0 in index sets written before it was recorded.
     */
    public record Entry(String file, String contextId, int layer, int kvHead, int keys, int dim, long bytes,
                        long checksum, int queryHeadsPerKvHead) implements Serializable {
        public HeadKey key() {
            return new HeadKey(contextId, layer, kvHead);
        }
    }

    /** A committed index set: the manifest's content. */
    public record Manifest(String format, int version, long commit, String jobId, String committedAt,
                           Map<String, String> options, Map<String, Long> counters, List<Entry> heads)
            implements Serializable {
    }

    /** The latest manifest under {@code root}, or empty when there is none. */
    public static Optional<Manifest> latest(FileSystem fs, Path root) throws IOException {
        FileStatus[] found;
        try {
            found = fs.listStatus(root, p -> p.getName().startsWith(MANIFEST_PREFIX)
                    && p.getName().endsWith(MANIFEST_SUFFIX));
        } catch (FileNotFoundException e) {
            return Optional.empty();
        }
        Path newest = null;
        long newestNumber = -1;
        for (FileStatus status : found) {
            String name = status.getPath().getName();
            long number;
            try {
                number = Long.parseLong(name.substring(MANIFEST_PREFIX.length(),
                        name.length() - MANIFEST_SUFFIX.length()));
            } catch (NumberFormatException e) {
                continue;
            }
            if (number > newestNumber) {
                newestNumber = number;
                newest = status.getPath();
            }
        }
        if (newest == null) {
            return Optional.empty();
        }
        try (FSDataInputStream in = fs.open(newest)) {
            Manifest manifest = JSON.readValue((java.io.InputStream) in, Manifest.class);
            if (!FORMAT.equals(manifest.format()) || manifest.version() < 1 || manifest.version() > VERSION) {
                throw new IOException(newest + ": manifest must be " + FORMAT + " version 1 to " + VERSION
                        + "; found " + manifest.format() + " version " + manifest.version());
            }
            return Optional.of(manifest);
        }
    }

    /** The latest manifest under {@code path}, or a one-line error when the path holds no committed index set. */
    public static Manifest require(HadoopConf conf, String path) throws IOException {
        Path root = new Path(path);
        FileSystem fs = root.getFileSystem(conf.get());
        return latest(fs, root).orElseThrow(() -> new IOException("index path must hold a committed index set "
                + "(a " + MANIFEST_PREFIX + "*" + MANIFEST_SUFFIX + " written by a successful build); path=" + path));
    }

    static String manifestName(long commit) {
        return String.format("%s%08d%s", MANIFEST_PREFIX, commit, MANIFEST_SUFFIX);
    }

    static Path jobTemp(Path root, String jobId) {
        return new Path(new Path(root, TEMP_DIR), jobId);
    }

    static String attemptDirName(int partition, long taskId) {
        return partition + "-" + taskId;
    }

    static String committedDir(String jobId, int partition) {
        return DATA_DIR + "/" + jobId + "/" + String.format("part-%05d", partition);
    }

    /** Writes one head into a task attempt's directory; returns the entry, its file relative to the attempt. */
    static Entry writeHead(FileSystem fs, Path attemptDir, int sequence, IndexedHead head, int queryHeadsPerKvHead)
            throws IOException {
        String name = String.format("%05d%s", sequence, IndexFile.EXTENSION);
        long checksum;
        try (FSDataOutputStream out = fs.create(new Path(attemptDir, name), false)) {
            checksum = IndexFile.write(head, out);
        }
        long bytes = fs.getFileStatus(new Path(attemptDir, name)).getLen();
        return new Entry(name, head.contextId(), head.layer(), head.kvHead(), head.index().keys(),
                head.index().dim(), bytes, checksum, queryHeadsPerKvHead);
    }

    /** What a task attempt reports to the job commit. */
    record TaskFiles(int partition, String attemptDir, List<Entry> entries) implements Serializable {
    }

    /**
     * The job commit: moves the committed tasks' files into {@code data/}, then creates the next manifest. With
     * {@code replace} the new manifest names only this job's heads (overwrite); otherwise it adds them to the
     * previous ones and fails if a head is already there (append).
     */
    static Manifest commit(FileSystem fs, Path root, String jobId, List<TaskFiles> tasks, boolean replace,
                           Map<String, String> options, Map<String, Long> counters) throws IOException {
        Optional<Manifest> previous = latest(fs, root);
        List<Entry> heads = new ArrayList<>();
        java.util.Set<HeadKey> seen = new java.util.HashSet<>();
        if (!replace && previous.isPresent()) {
            for (Entry e : previous.get().heads()) {
                heads.add(e);
                seen.add(e.key());
            }
        }
        Path temp = jobTemp(root, jobId);
        List<Entry> added = new ArrayList<>();
        for (TaskFiles task : tasks) {
            String target = committedDir(jobId, task.partition());
            for (Entry e : task.entries()) {
                if (!seen.add(e.key())) {
                    throw new IOException("index set must hold each head once; " + e.key() + " is already in " + root
                            + " (write with mode overwrite to replace it)");
                }
                added.add(new Entry(target + "/" + e.file(), e.contextId(), e.layer(), e.kvHead(), e.keys(), e.dim(),
                        e.bytes(), e.checksum(), e.queryHeadsPerKvHead()));
            }
        }
        for (TaskFiles task : tasks) {
            Path to = new Path(root, committedDir(jobId, task.partition()));
            fs.mkdirs(to.getParent());
            if (!fs.rename(new Path(temp, task.attemptDir()), to)) {
                throw new IOException("rename of a task's index files failed; path="
                        + new Path(temp, task.attemptDir()));
            }
        }
        heads.addAll(added);
        heads.sort(java.util.Comparator.comparing(Entry::key));
        long commit = previous.map(m -> m.commit() + 1).orElse(1L);
        Manifest manifest = new Manifest(FORMAT, VERSION, commit, jobId, java.time.Instant.now().toString(), options,
                counters, heads);
        try (FSDataOutputStream out = fs.create(new Path(root, manifestName(commit)), false)) {
            out.write(JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(manifest));
        }
        fs.delete(temp, true);
        if (replace && previous.isPresent()) {
            for (Entry e : previous.get().heads()) {
                fs.delete(new Path(root, e.file()), false);
            }
        }
        return manifest;
    }

    /** Removes what an aborted job wrote; nothing of it is named by a manifest. */
    static void abort(FileSystem fs, Path root, String jobId) {
        try {
            fs.delete(jobTemp(root, jobId), true);
            fs.delete(new Path(new Path(root, DATA_DIR), jobId), true);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The bytes of one committed file, checked against the checksum its manifest recorded. */
    static byte[] readFile(HadoopConf conf, String root, Entry entry) throws IOException {
        Path file = new Path(new Path(root), entry.file());
        byte[] bytes;
        try (FSDataInputStream in = file.getFileSystem(conf.get()).open(file)) {
            bytes = in.readAllBytes();
        }
        long declared = IndexFile.footerChecksum(bytes);
        if (declared != entry.checksum()) {
            throw new IndexFileException.Corrupt(file.toString(), "checksum 0x" + Long.toHexString(declared)
                    + " differs from the manifest's 0x" + Long.toHexString(entry.checksum())
                    + " (file replaced after commit?)");
        }
        return bytes;
    }

    /** Parses and verifies a file read by {@link #readFile}. */
    static IndexedHead parse(String root, Entry entry, byte[] bytes) throws IOException {
        return IndexFile.read(new ByteArrayInputStream(bytes), new Path(new Path(root), entry.file()).toString());
    }
}
