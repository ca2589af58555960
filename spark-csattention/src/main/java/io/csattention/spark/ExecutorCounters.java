package io.csattention.spark;

import org.apache.spark.util.AccumulatorV2;

import java.util.Map;
import java.util.TreeMap;

/**
 * A counter per executor (by Spark executor id) as an accumulator: each task adds what it counted on its executor;
 * values of one executor are summed, or kept as their maximum for a high-water mark. Only successful task attempts
 * count, as for Spark's own accumulators.
 */
final class ExecutorCounters extends AccumulatorV2<Long, Map<String, Long>> {

    private final boolean max;
    private final TreeMap<String, Long> counts = new TreeMap<>();

    ExecutorCounters(boolean max) {
        this.max = max;
    }

    /** The executor this task runs on ("driver" in local mode). */
    static String executorId() {
        org.apache.spark.SparkEnv env = org.apache.spark.SparkEnv.get();
        return env == null ? "driver" : env.executorId();
    }

    /** Adds {@code value} for this task's executor. */
    @Override
    public void add(Long value) {
        put(executorId(), value);
    }

    private synchronized void put(String executor, long value) {
        counts.merge(executor, value, max ? Math::max : Long::sum);
    }

    @Override
    public synchronized boolean isZero() {
        return counts.isEmpty();
    }

    @Override
    public synchronized AccumulatorV2<Long, Map<String, Long>> copy() {
        ExecutorCounters c = new ExecutorCounters(max);
        c.counts.putAll(counts);
        return c;
    }

    @Override
    public synchronized void reset() {
        counts.clear();
    }

    @Override
    public void merge(AccumulatorV2<Long, Map<String, Long>> other) {
        for (Map.Entry<String, Long> e : other.value().entrySet()) {
            put(e.getKey(), e.getValue());
        }
    }

    /** Executor id to count, in id order. */
    @Override
    public synchronized Map<String, Long> value() {
        return Map.copyOf(new TreeMap<>(counts));
    }

    /** The largest count of any executor (0 when none counted). */
    long largest() {
        return value().values().stream().mapToLong(Long::longValue).max().orElse(0);
    }
}
