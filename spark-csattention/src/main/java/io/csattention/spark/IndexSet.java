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
 * The layout of an index set under one Hadoop FileSystem path, its exclusive commit and its cleanup.
 *
 * <pre>
 * PATH/_manifest-00000001.json   the committed index set, one manifest per successful write; readers take the
 *                                newest one that parses (a torn or damaged newer one is skipped, with a warning)
 * PATH/data/JOB/part-P/S.csai    index files ({@link IndexFile}) named by manifests; a manifest names nothing else
 * PATH/_temporary/JOB/P-TASK/    a task attempt's files while the job runs
 * PATH/_temporary/JOB/_manifest-N.json   the job's manifest before it is claimed
 * </pre>
 *
 * <p><b>Commit.</b> A write job's tasks write under {@code _temporary}; the job commit renames each committed task's
 * directory into {@code data/}, writes the next manifest (number = highest present + 1) completely under
 * {@code _temporary/JOB}, then <i>claims</i> the manifest's final name: on the local file system with a hard link
 * ({@code link(2)} fails when the name exists: exclusive and atomic), elsewhere with {@link FileSystem#rename}, which
 * refuses an existing destination atomically on HDFS. Either way the claimed file is read back and must carry this
 * job's id (the check after). A reader therefore never sees a partial manifest, and of two writers that read the
 * same previous set exactly one claims the next number; the other fails with one line and its files are removed
 * ({@link #abort}). On S3A (and other object stores whose rename is a copy) the claim is not exclusive: two writers
 * racing at the same instant can both succeed there, so use one writer per path.
 *
 * <p><b>Grace rule.</b> A commit never deletes what a reader could still be using. The files of a manifest that a
 * newer one replaced (overwrite) are deleted by a later commit only once that newer manifest is older than the
 * grace period ({@value #GRACE_SECONDS}, Hadoop configuration, seconds; default 24 h), and only when no manifest
 * still inside its grace names them; the expired manifest goes with them. Files no manifest has ever named (a killed
 * build's {@code data/JOB} or {@code _temporary/JOB}) are removed when older than the grace period and at least
 * 24 h. Nothing outside {@code data/}, {@code _temporary/} and the manifests of the path is ever deleted.
 */
public final class IndexSet {

    public static final String MANIFEST_PREFIX = "_manifest-";
    public static final String MANIFEST_SUFFIX = ".json";
    public static final String DATA_DIR = "data";
    public static final String TEMP_DIR = "_temporary";
    public static final String FORMAT = "csattention-index-set";
    public static final int VERSION = 1;
    /** Hadoop configuration key: seconds a replaced index set's files are kept (default 24 h). */
    public static final String GRACE_SECONDS = "csattention.indexSet.graceSeconds";
    public static final long DEFAULT_GRACE_SECONDS = 24 * 3600;
    /** Files no manifest named are removed only when at least this old, whatever the grace period. */
    static final long ORPHAN_MIN_AGE_MILLIS = 24 * 3600 * 1000L;
    /** A manifest longer than this is refused unread (100,000 heads take about 30 MiB). */
    static final long MAX_MANIFEST_BYTES = 256L << 20;

    private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(IndexSet.class);
    private static final ObjectMapper JSON = new ObjectMapper()
            .configure(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES, false);

    private IndexSet() {
    }

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

    /** A manifest that cannot be used; the message is one line naming the manifest. */
    public static class ManifestException extends IOException {
        ManifestException(String message) {
            super(message);
        }
    }

    /**
     * A manifest that is not a complete, well-formed manifest (torn by a failed write, damaged): readers skip it and
     * read the newest older one.
     */
    public static final class CorruptManifest extends ManifestException {
        CorruptManifest(String manifest, String problem) {
            super("index set manifest must be a complete " + FORMAT + " document; " + problem + " (manifest="
                    + manifest + ")");
        }
    }

    /**
     * A well-formed manifest this reader must not follow: it names a file outside the index path's {@code data/},
     * or it was written by a newer version. Readers stop at it.
     */
    public static final class RefusedManifest extends ManifestException {
        RefusedManifest(String message) {
            super(message);
        }
    }

    /** Another writer committed first. */
    public static final class CommitConflict extends IOException {
        CommitConflict(String message) {
            super(message);
        }
    }

    /** A manifest file by its number. */
    record ManifestFile(long number, FileStatus status) {
    }

    /** The manifest files under {@code root}, newest first; names that are not a manifest's are ignored. */
    static List<ManifestFile> manifestFiles(FileSystem fs, Path root) throws IOException {
        FileStatus[] found;
        try {
            found = fs.listStatus(root, p -> p.getName().startsWith(MANIFEST_PREFIX)
                    && p.getName().endsWith(MANIFEST_SUFFIX));
        } catch (FileNotFoundException e) {
            return List.of();
        }
        List<ManifestFile> files = new ArrayList<>();
        for (FileStatus status : found) {
            String name = status.getPath().getName();
            String digits = name.substring(MANIFEST_PREFIX.length(), name.length() - MANIFEST_SUFFIX.length());
            if (status.isFile() && !digits.isEmpty() && digits.chars().allMatch(Character::isDigit)
                    && digits.length() <= 18) {
                files.add(new ManifestFile(Long.parseLong(digits), status));
            }
        }
        files.sort(java.util.Comparator.comparingLong(ManifestFile::number).reversed());
        return files;
    }

    /**
     * The newest manifest under {@code root} that parses, or empty when there is none. Newer manifests that are torn
     * or damaged are skipped with one warning line; a manifest that names a file outside the index path, or is of a
     * newer version, stops the read with a {@link RefusedManifest}.
     */
    public static Optional<Manifest> latest(FileSystem fs, Path root) throws IOException {
        return latest(fs, root, manifestFiles(fs, root));
    }

    private static Optional<Manifest> latest(FileSystem fs, Path root, List<ManifestFile> files) throws IOException {
        List<String> skipped = new ArrayList<>();
        for (ManifestFile file : files) {
            try {
                Manifest manifest = readManifest(fs, root, file);
                if (!skipped.isEmpty()) {
                    LOG.warn("index set {}: reading {} (commit {}); skipped {}", root, file.status().getPath()
                            .getName(), manifest.commit(), String.join("; ", skipped));
                }
                return Optional.of(manifest);
            } catch (CorruptManifest e) {
                skipped.add(e.getMessage());
            }
        }
        if (!skipped.isEmpty()) {
            LOG.warn("index set {}: no manifest is readable; skipped {}", root, String.join("; ", skipped));
        }
        return Optional.empty();
    }

    /** Reads and checks one manifest file. */
    static Manifest readManifest(FileSystem fs, Path root, ManifestFile file) throws IOException {
        Path path = file.status().getPath();
        long length = file.status().getLen();
        if (length > MAX_MANIFEST_BYTES) {
            throw new CorruptManifest(path.toString(), "its length must be at most " + MAX_MANIFEST_BYTES
                    + " bytes; length=" + length);
        }
        byte[] bytes;
        try (FSDataInputStream in = fs.open(path)) {
            bytes = in.readNBytes((int) MAX_MANIFEST_BYTES + 1);
        }
        return parseManifest(bytes, path.toString(), file.number());
    }

    /**
     * Parses the bytes of manifest {@code number} ({@code name} in errors) and checks every field: format, version,
     * commit number, and each entry's file (relative, under {@code data/}, no {@code .} or {@code ..} segments),
     * shape, size and head, each head once.
     */
    static Manifest parseManifest(byte[] bytes, String name, long number) throws ManifestException {
        if (bytes.length == 0) {
            throw new CorruptManifest(name, "length=0 (a torn write?)");
        }
        if (bytes.length > MAX_MANIFEST_BYTES) {
            throw new CorruptManifest(name, "its length must be at most " + MAX_MANIFEST_BYTES + " bytes; length="
                    + bytes.length);
        }
        Manifest manifest;
        try {
            manifest = JSON.readValue(bytes, Manifest.class);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            String problem = e.getOriginalMessage() == null ? e.getClass().getSimpleName() : e.getOriginalMessage();
            com.fasterxml.jackson.core.JsonLocation at = e.getLocation();
            throw new CorruptManifest(name, "JSON error at byte " + (at == null ? -1 : at.getByteOffset()) + ": "
                    + oneLine(problem));
        } catch (IOException e) {
            throw new CorruptManifest(name, "unreadable: " + oneLine(String.valueOf(e.getMessage())));
        }
        if (manifest == null) {
            throw new CorruptManifest(name, "the document is null");
        }
        if (!FORMAT.equals(manifest.format())) {
            throw new CorruptManifest(name, "format=" + manifest.format());
        }
        if (manifest.version() < 1) {
            throw new CorruptManifest(name, "version must be >= 1; version=" + manifest.version());
        }
        if (manifest.version() > VERSION) {
            throw new RefusedManifest("index set manifest version must be 1 to " + VERSION + " (upgrade "
                    + "csattention-spark); version=" + manifest.version() + " (manifest=" + name + ")");
        }
        if (manifest.commit() != number) {
            throw new CorruptManifest(name, "commit must be the number in its name " + number + "; commit="
                    + manifest.commit());
        }
        if (manifest.heads() == null) {
            throw new CorruptManifest(name, "heads=null");
        }
        java.util.Set<HeadKey> seen = new java.util.HashSet<>();
        for (int i = 0; i < manifest.heads().size(); i++) {
            Entry e = manifest.heads().get(i);
            if (e == null) {
                throw new CorruptManifest(name, "heads[" + i + "]=null");
            }
            if (e.file() == null) {
                throw new CorruptManifest(name, "heads[" + i + "].file=null");
            }
            if (!insideData(e.file())) {
                throw new RefusedManifest("index set manifest must name files under " + DATA_DIR + "/ of its index "
                        + "path (relative, no . or .. segments); heads[" + i + "].file=" + e.file() + " (manifest="
                        + name + ")");
            }
            String problem = e.contextId() == null ? "contextId=null"
                    : e.layer() < 0 ? "layer=" + e.layer()
                    : e.kvHead() < 0 ? "kvHead=" + e.kvHead()
                    : e.keys() <= 0 ? "keys=" + e.keys()
                    : e.dim() <= 0 ? "dim=" + e.dim()
                    : e.bytes() < IndexFile.FOOTER_BYTES ? "bytes=" + e.bytes()
                    : e.queryHeadsPerKvHead() < 0 ? "queryHeadsPerKvHead=" + e.queryHeadsPerKvHead()
                    : !seen.add(e.key()) ? "a second entry for " + e.key() : null;
            if (problem != null) {
                throw new CorruptManifest(name, "heads[" + i + "]: " + problem);
            }
        }
        return manifest;
    }

    private static String oneLine(String text) {
        String line = text.strip();
        int end = line.indexOf('\n');
        return end < 0 ? line : line.substring(0, end).strip();
    }

    /**
     * True when a manifest's {@code file} names a path under {@code data/} of the index path: relative, segments
     * separated by single slashes, none empty, {@code .} or {@code ..}, and no {@code :} or {@code \} (no scheme,
     * no drive).
     */
    static boolean insideData(String file) {
        if (!file.startsWith(DATA_DIR + "/")) {
            return false;
        }
        for (String segment : file.split("/", -1)) {
            if (segment.isEmpty() || segment.equals(".") || segment.equals("..") || segment.indexOf(':') >= 0
                    || segment.indexOf('\\') >= 0) {
                return false;
            }
        }
        return true;
    }

    /** The path of an entry's file, refused when it is not under the index path's {@code data/}. */
    static Path resolve(String root, Entry entry) throws RefusedManifest {
        if (entry.file() == null || !insideData(entry.file())) {
            throw new RefusedManifest("index set manifest must name files under " + DATA_DIR + "/ of its index path "
                    + "(relative, no . or .. segments); file=" + entry.file() + " (path=" + root + ")");
        }
        return new Path(new Path(root), entry.file());
    }

    /** The latest manifest under {@code path}, or a one-line error when the path holds no committed index set. */
    public static Manifest require(HadoopConf conf, String path) throws IOException {
        Path root = new Path(path);
        FileSystem fs = root.getFileSystem(conf.get());
        return latest(fs, root).orElseThrow(() -> new IOException("index path must hold a committed index set "
                + "(a " + MANIFEST_PREFIX + "*" + MANIFEST_SUFFIX + " written by a successful build); path=" + path));
    }

    /** The grace period of {@code conf} in milliseconds ({@value #GRACE_SECONDS}, must be >= 0). */
    static long graceMillis(org.apache.hadoop.conf.Configuration conf) {
        String text = conf.get(GRACE_SECONDS, Long.toString(DEFAULT_GRACE_SECONDS)).trim();
        long seconds;
        try {
            seconds = Long.parseLong(text);
        } catch (NumberFormatException e) {
            seconds = -1;
        }
        if (seconds < 0 || seconds > Long.MAX_VALUE / 1000) {
            throw new IllegalArgumentException(GRACE_SECONDS + " must be an integer number of seconds >= 0; "
                    + GRACE_SECONDS + "=" + text);
        }
        return seconds * 1000;
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
     * The job commit: moves the committed tasks' files into {@code data/}, then claims the next manifest (see the
     * class comment). With {@code replace} the new manifest names only this job's heads (overwrite); otherwise it
     * adds them to the previous ones and fails if a head is already there (append). With {@code requireEmpty}
     * (errorifexists) it fails when the path holds a committed set. Losing the claim to another writer is a
     * {@link CommitConflict}; after a successful claim nothing throws, and replaced files are removed by the grace
     * rule ({@code graceMillis}).
     */
    static Manifest commit(FileSystem fs, Path root, String jobId, List<TaskFiles> tasks, boolean replace,
                           boolean requireEmpty, Map<String, String> options, Map<String, Long> counters,
                           long graceMillis) throws IOException {
        List<ManifestFile> files = manifestFiles(fs, root);
        Optional<Manifest> previous = latest(fs, root, files);
        if (requireEmpty && previous.isPresent()) {
            throw new CommitConflict(alreadyHolds(root));
        }
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
        long commit = (files.isEmpty() ? 0 : files.get(0).number()) + 1;
        Manifest manifest = new Manifest(FORMAT, VERSION, commit, jobId, java.time.Instant.now().toString(), options,
                counters, heads);
        Path written = new Path(temp, manifestName(commit));
        try (FSDataOutputStream out = fs.create(written, true)) {
            out.write(JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(manifest));
        }
        if (!claim(fs, root, written, commit, jobId)) {
            throw new CommitConflict(requireEmpty ? alreadyHolds(root) : "index set must be committed by one writer "
                    + "at a time; another build committed " + manifestName(commit) + " first (rerun this build); "
                    + "path=" + root);
        }
        try {
            fs.delete(temp, true);
            removeIfEmpty(fs, temp.getParent());
        } catch (IOException e) {
            LOG.warn("index set {}: could not remove {} after commit {}: {}", root, temp, commit, e.toString());
        }
        try {
            clean(fs, root, manifest, graceMillis, System.currentTimeMillis());
        } catch (IOException | RuntimeException e) {
            LOG.warn("index set {}: cleanup after commit {} failed (a later commit retries): {}", root, commit,
                    e.toString());
        }
        return manifest;
    }

    private static String alreadyHolds(Path root) {
        return "index path already holds an index set (use mode overwrite or append); path=" + root;
    }

    /**
     * Gives the complete manifest {@code written} its final name {@code commit} unless that name exists; true when
     * this job holds the name afterwards (read back: the check after).
     */
    static boolean claim(FileSystem fs, Path root, Path written, long commit, String jobId) throws IOException {
        Path target = new Path(root, manifestName(commit));
        java.io.File localWritten = localFile(fs, written);
        if (localWritten != null) {
            // rename(2) replaces an existing file and Hadoop's local create(overwrite=false) checks, then creates:
            // neither is exclusive; link(2) is
            try {
                java.nio.file.Files.createLink(localFile(fs, target).toPath(), localWritten.toPath());
            } catch (java.nio.file.FileAlreadyExistsException e) {
                return false;
            } catch (IOException | UnsupportedOperationException e) {
                throw new IOException("index set commit must create its manifest exclusively, with a hard link on "
                        + "the local file system; path=" + target + ", error=" + e);
            }
        } else {
            // HDFS refuses an existing destination atomically; the exists check narrows the window on stores whose
            // rename replaces it (S3A: a copy), where the claim is not exclusive
            if (fs.exists(target)) {
                return false;
            }
            try {
                if (!fs.rename(written, target)) {
                    return false;
                }
            } catch (org.apache.hadoop.fs.FileAlreadyExistsException e) {
                return false;
            }
        }
        FileStatus status;
        try {
            status = fs.getFileStatus(target);
        } catch (FileNotFoundException e) {
            return false;
        }
        try {
            return jobId.equals(readManifest(fs, root, new ManifestFile(commit, status)).jobId());
        } catch (ManifestException e) {
            return false;
        }
    }

    /** The java.io file of {@code path} on a local file system, or null on any other. */
    private static java.io.File localFile(FileSystem fs, Path path) {
        if (fs instanceof org.apache.hadoop.fs.LocalFileSystem local) {
            return local.pathToFile(path);
        }
        if (fs instanceof org.apache.hadoop.fs.RawLocalFileSystem raw) {
            return raw.pathToFile(path);
        }
        return null;
    }

    /**
     * The grace rule after commit {@code newest}: removes the job directories under {@code data/} that only expired
     * manifests name (a manifest expires {@code graceMillis} after the next readable one was written) and the
     * expired manifests; job directories under {@code data/} and {@code _temporary/} that no manifest names and
     * that are older than the grace period and {@link #ORPHAN_MIN_AGE_MILLIS}. Every path removed is built from the
     * root and a listed child's name.
     */
    static void clean(FileSystem fs, Path root, Manifest newest, long graceMillis, long now) throws IOException {
        List<ManifestFile> files = manifestFiles(fs, root);
        java.util.Set<String> kept = new java.util.HashSet<>();
        java.util.Set<String> expiredJobs = new java.util.HashSet<>();
        List<ManifestFile> expired = new ArrayList<>();
        jobDirs(newest, kept);
        long supersededAt = Long.MAX_VALUE;
        for (ManifestFile file : files) {
            if (file.number() >= newest.commit()) {
                if (file.number() == newest.commit()) {
                    supersededAt = file.status().getModificationTime();
                } else {
                    try {
                        jobDirs(readManifest(fs, root, file), kept);
                    } catch (ManifestException e) {
                        // a newer manifest than ours that does not parse names nothing we can know: keep all
                        return;
                    }
                }
                continue;
            }
            Manifest older;
            try {
                older = readManifest(fs, root, file);
            } catch (ManifestException e) {
                if (now - file.status().getModificationTime() >= Math.max(graceMillis, ORPHAN_MIN_AGE_MILLIS)) {
                    expired.add(file);
                }
                continue;
            }
            boolean isExpired = supersededAt != Long.MAX_VALUE && now - supersededAt >= graceMillis;
            if (isExpired) {
                expired.add(file);
                jobDirs(older, expiredJobs);
            } else {
                jobDirs(older, kept);
            }
            supersededAt = file.status().getModificationTime();
        }
        // manifests first: a crash between the two leaves unnamed files (removed later), never a manifest naming none
        for (ManifestFile file : expired) {
            fs.delete(new Path(root, file.status().getPath().getName()), false);
        }
        long orphanAge = Math.max(graceMillis, ORPHAN_MIN_AGE_MILLIS);
        Path data = new Path(root, DATA_DIR);
        for (FileStatus dir : list(fs, data)) {
            String job = DATA_DIR + "/" + dir.getPath().getName();
            if (kept.contains(job)) {
                continue;
            }
            if (expiredJobs.contains(job) || now - dir.getModificationTime() >= orphanAge) {
                fs.delete(new Path(data, dir.getPath().getName()), true);
            }
        }
        Path temporary = new Path(root, TEMP_DIR);
        for (FileStatus dir : list(fs, temporary)) {
            if (now - dir.getModificationTime() >= orphanAge) {
                fs.delete(new Path(temporary, dir.getPath().getName()), true);
            }
        }
    }

    /**
     * Removes {@code dir} when it holds nothing: {@code _temporary/} once the last job in it is done, so that a
     * committed index set holds only its manifests and {@code data/}. A job that starts meanwhile keeps it: a
     * non-recursive delete of a directory that is not empty fails (and is then not an error), and a job that
     * creates its directory after the delete creates {@code _temporary/} again.
     */
    static void removeIfEmpty(FileSystem fs, Path dir) throws IOException {
        if (list(fs, dir).length > 0 || !fs.exists(dir)) {
            return;
        }
        try {
            fs.delete(dir, false);
        } catch (IOException e) {
            if (list(fs, dir).length == 0) {
                throw e;
            }
        }
    }

    /** Adds the job directories ({@code data/JOB}) a manifest's files lie in. */
    private static void jobDirs(Manifest manifest, java.util.Set<String> into) {
        for (Entry e : manifest.heads()) {
            String[] segments = e.file().split("/", 3);
            into.add(segments[0] + "/" + segments[1]);
        }
    }

    private static FileStatus[] list(FileSystem fs, Path dir) throws IOException {
        try {
            return fs.listStatus(dir);
        } catch (FileNotFoundException e) {
            return new FileStatus[0];
        }
    }

    /**
     * Removes what an aborted job wrote; nothing of it is named by a manifest (unless the job's claim succeeded and
     * a later step failed: then its files stay).
     */
    static void abort(FileSystem fs, Path root, String jobId) {
        try {
            fs.delete(jobTemp(root, jobId), true);
            removeIfEmpty(fs, new Path(root, TEMP_DIR));
            Optional<Manifest> newest;
            try {
                newest = latest(fs, root);
            } catch (ManifestException e) {
                newest = Optional.empty();
            }
            if (newest.isEmpty() || !jobId.equals(newest.get().jobId())) {
                fs.delete(new Path(new Path(root, DATA_DIR), jobId), true);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * The bytes of one committed file, checked against the length and the checksum its manifest recorded; the file
     * must lie under the index path's {@code data/}.
     */
    static byte[] readFile(HadoopConf conf, String root, Entry entry) throws IOException {
        Path file = resolve(root, entry);
        FileSystem fs = file.getFileSystem(conf.get());
        checkLength(fs, file, entry);
        byte[] bytes = new byte[(int) entry.bytes()];
        try (FSDataInputStream in = fs.open(file)) {
            in.readFully(0, bytes);
        } catch (java.io.EOFException e) {
            throw new IndexFileException.Corrupt(file.toString(), "the file must be the " + entry.bytes()
                    + " bytes its manifest recorded; it ends early");
        }
        long declared = IndexFile.footerChecksum(bytes);
        if (declared != entry.checksum()) {
            throw new IndexFileException.Corrupt(file.toString(), "checksum 0x" + Long.toHexString(declared)
                    + " differs from the manifest's 0x" + Long.toHexString(entry.checksum())
                    + " (file replaced after commit?)");
        }
        return bytes;
    }

    /** The header, metadata and centroid tables of one committed file (see {@link IndexFile#readSummary}). */
    static io.csattention.format.IndexFileSummary readSummary(FileSystem fs, String root, Entry entry)
            throws IOException {
        Path file = resolve(root, entry);
        checkLength(fs, file, entry);
        try (FSDataInputStream in = fs.open(file)) {
            return IndexFile.readSummary(in, file.toString(), entry.bytes());
        }
    }

    /** The file must exist and have the length its manifest recorded (and fit in one array). */
    private static void checkLength(FileSystem fs, Path file, Entry entry) throws IOException {
        FileStatus status;
        try {
            status = fs.getFileStatus(file);
        } catch (FileNotFoundException e) {
            throw new IOException("index file named by the manifest must exist; path=" + file);
        }
        if (status.getLen() != entry.bytes()) {
            throw new IndexFileException.Corrupt(file.toString(), "the file must be the " + entry.bytes()
                    + " bytes its manifest recorded; length=" + status.getLen() + " (truncated or replaced after "
                    + "commit?)");
        }
        if (entry.bytes() > Integer.MAX_VALUE - 16) {
            throw new IndexFileException.Corrupt(file.toString(), "the file must be smaller than 2 GiB; length="
                    + entry.bytes());
        }
    }

    /** Parses and verifies a file read by {@link #readFile}. */
    static IndexedHead parse(String root, Entry entry, byte[] bytes) throws IOException {
        return IndexFile.read(new ByteArrayInputStream(bytes), resolve(root, entry).toString(), bytes.length);
    }
}
