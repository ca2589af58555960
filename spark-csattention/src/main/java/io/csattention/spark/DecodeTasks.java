package io.csattention.spark;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Which decode task holds which rows, planned on the driver from the rows per head: a head with more rows than a
 * task's share gets tasks of its own (its rows dealt over them in turn), smaller heads share a task, in head order,
 * as long as the task's rows stay within the share. The share is {@code rowsPerTask}, or less when that would give
 * fewer tasks than the cluster has cores. A task so holds the rows of one head, or of a few small ones, and the
 * tasks of one head are neighbours (Spark starts them together, so the executors that run them share one load).
 * Rows of no head of the index set (bad rows) go to the first task, which reports or routes them.
 *
 * <p>The shuffle key of a row is its task in the high 32 bits and its head's place in the plan in the low ones, so a
 * task's rows, sorted by key, come grouped by head.
 */
final class DecodeTasks implements Serializable {

    private final Map<HeadKey, Integer> ordinals;
    private final int[] firstTask;
    private final int[] taskCount;
    private final int tasks;
    private final long rows;
    private final int share;

    private DecodeTasks(Map<HeadKey, Integer> ordinals, int[] firstTask, int[] taskCount, int tasks, long rows,
                        int share) {
        this.ordinals = ordinals;
        this.firstTask = firstTask;
        this.taskCount = taskCount;
        this.tasks = tasks;
        this.rows = rows;
        this.share = share;
    }

    /** The plan of {@code rowsPerHead} (rows of each head of the index set) over at least {@code cores} tasks. */
    static DecodeTasks plan(Map<HeadKey, Long> rowsPerHead, int rowsPerTask, int cores) {
        TreeMap<HeadKey, Long> heads = new TreeMap<>(rowsPerHead);
        long total = heads.values().stream().mapToLong(Long::longValue).sum();
        int share = (int) Math.max(1, Math.min(rowsPerTask, -Math.floorDiv(-total, Math.max(1, cores))));
        Map<HeadKey, Integer> ordinals = new java.util.HashMap<>();
        int[] first = new int[heads.size()];
        int[] count = new int[heads.size()];
        int tasks = 0;
        long packed = 0;
        int h = 0;
        for (Map.Entry<HeadKey, Long> e : heads.entrySet()) {
            long n = e.getValue();
            ordinals.put(e.getKey(), h);
            if (n > share) {
                if (packed > 0) {
                    tasks++;
                    packed = 0;
                }
                first[h] = tasks;
                count[h] = (int) -Math.floorDiv(-n, share);
                tasks += count[h];
            } else {
                if (packed > 0 && packed + n > share) {
                    tasks++;
                    packed = 0;
                }
                first[h] = tasks;
                count[h] = 1;
                packed += n;
            }
            h++;
        }
        if (packed > 0 || tasks == 0) {
            tasks++;
        }
        return new DecodeTasks(Map.copyOf(ordinals), first, count, tasks, total, share);
    }

    /** Decode tasks of the plan (at least one). */
    int tasks() {
        return tasks;
    }

    /** Heads of the index set the rows name. */
    int heads() {
        return firstTask.length;
    }

    /** Rows the plan counted. */
    long rows() {
        return rows;
    }

    /** The most rows a task holds (a head split over several tasks deals its rows evenly, within one). */
    int share() {
        return share;
    }

    /**
     * The shuffle key of the {@code nth} row (0, 1, ... in an input partition's order) of head {@code key} in input
     * partition {@code partition}; {@code key} null, or not a head of the plan: a bad row.
     */
    long shuffleKey(HeadKey key, int partition, long nth) {
        Integer h = key == null ? null : ordinals.get(key);
        if (h == null) {
            return ((long) 0 << 32) | firstTask.length;
        }
        int task = firstTask[h] + (int) Math.floorMod(nth + partition, (long) taskCount[h]);
        return ((long) task << 32) | h;
    }

    /** The tasks of each head, for logs and tests: head to its task numbers. */
    Map<HeadKey, List<Integer>> tasksByHead() {
        Map<HeadKey, List<Integer>> out = new TreeMap<>();
        for (Map.Entry<HeadKey, Integer> e : ordinals.entrySet()) {
            List<Integer> ids = new ArrayList<>();
            for (int t = 0; t < taskCount[e.getValue()]; t++) {
                ids.add(firstTask[e.getValue()] + t);
            }
            out.put(e.getKey(), Collections.unmodifiableList(ids));
        }
        return out;
    }

    /** Sends a row to the task in its key's high bits. */
    static final class ByTask extends org.apache.spark.Partitioner {
        private final int tasks;

        ByTask(int tasks) {
            this.tasks = tasks;
        }

        @Override
        public int numPartitions() {
            return tasks;
        }

        @Override
        public int getPartition(Object key) {
            return (int) ((Long) key >>> 32);
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof ByTask b && b.tasks == tasks;
        }

        @Override
        public int hashCode() {
            return tasks;
        }
    }

    /** A row's place in the input: its input partition in the high bits, its row in the partition in the low 33. */
    static long sequence(int partition, long row) {
        return ((long) partition << 33) | row;
    }

    /** Sends a decoded row back to the partition it came from (the high bits of its {@link #sequence}). */
    static final class ByInputPartition extends org.apache.spark.Partitioner {
        private final int partitions;

        ByInputPartition(int partitions) {
            this.partitions = partitions;
        }

        @Override
        public int numPartitions() {
            return partitions;
        }

        @Override
        public int getPartition(Object key) {
            return (int) ((Long) key >>> 33);
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof ByInputPartition b && b.partitions == partitions;
        }

        @Override
        public int hashCode() {
            return partitions;
        }
    }
}
