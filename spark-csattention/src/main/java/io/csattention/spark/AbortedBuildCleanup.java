package io.csattention.spark;

import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.SparkContext;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerTaskEnd;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.Collections;
import java.util.Iterator;
import java.util.Map;
import java.util.WeakHashMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

/**
 * Removes what the tasks of an aborted index build write after the abort. Spark aborts a job on the driver while the
 * failed stage's other tasks still run: a task that had asked the commit coordinator just before the stage ended
 * commits its attempt directory after the driver deleted the job's temporary directory (seen twice in CI: a
 * {@code _temporary/JOB} left behind by a task reported as killed, with no abort of its writer). Every such write
 * happens inside a task, and the task's end event reaches the driver after it, so on every task end the aborted
 * builds' temporary directories are removed again ({@link IndexSet#abort}, which only ever touches the build's own
 * {@code _temporary/JOB} and {@code data/JOB}); one sweep runs when the build is registered, for a task that ended
 * before the listener was there. A build is watched for {@link #WATCH_MINUTES} minutes after its abort.
 */
final class AbortedBuildCleanup extends SparkListener {

    static final long WATCH_MINUTES = 10;

    private static final Map<SparkContext, AbortedBuildCleanup> BY_CONTEXT =
            Collections.synchronizedMap(new WeakHashMap<>());

    private final Map<String, Watched> builds = new ConcurrentHashMap<>();

    private record Watched(HadoopConf conf, String root, String jobId, long untilNanos) {
    }

    /** Watches the aborted build {@code jobId} under {@code root}: its late writes are removed as tasks end. */
    static void watch(SparkContext context, HadoopConf conf, String root, String jobId) {
        AbortedBuildCleanup cleanup = BY_CONTEXT.computeIfAbsent(context, c -> {
            AbortedBuildCleanup listener = new AbortedBuildCleanup();
            c.addSparkListener(listener);
            return listener;
        });
        cleanup.builds.put(root + '\n' + jobId, new Watched(conf, root, jobId,
                System.nanoTime() + TimeUnit.MINUTES.toNanos(WATCH_MINUTES)));
        // a task that wrote after the abort and ended before the listener was there is covered by this sweep
        cleanup.sweep();
    }

    @Override
    public void onTaskEnd(SparkListenerTaskEnd taskEnd) {
        sweep();
    }

    private void sweep() {
        long now = System.nanoTime();
        for (Iterator<Watched> it = builds.values().iterator(); it.hasNext(); ) {
            Watched w = it.next();
            try {
                Path root = new Path(w.root());
                FileSystem fs = root.getFileSystem(w.conf().get());
                if (fs.exists(IndexSet.jobTemp(root, w.jobId()))) {
                    IndexSet.abort(fs, root, w.jobId());
                }
            } catch (IOException | UncheckedIOException e) {
                // the next task end tries again; nothing of an aborted build is ever read
            }
            if (now - w.untilNanos() > 0) {
                it.remove();
            }
        }
    }
}
