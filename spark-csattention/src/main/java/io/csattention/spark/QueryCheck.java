package io.csattention.spark;

import java.io.NotSerializableException;
import java.util.Iterator;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Supplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The checks of one query row against the index set, shared by the decode job ({@link DecodePartition}) and the SQL
 * function ({@link DecodeFunction}), so that both give the same line for the same bad row: null ids, an unknown
 * context, layer or query head, a null query, a wrong dimension, a NaN or infinite value. Each line names the query
 * in parentheses: {@code query_id=...} where there is one (the job's table; the SQL function's seventh argument),
 * else {@code context_id=... layer=... head=...}.
 *
 * <h2>A bad row is not retried</h2>
 * A bad row is not a transient failure: every retry fails on the same row, and with {@code spark.task.maxFailures=4}
 * the job fails only after four attempts of its task (measured on a standalone cluster), each logging its stack.
 * Spark 4.0 has no per-job retry setting and no public "not retryable" exception; what it has is this, in
 * {@code TaskSetManager.handleFailedTask}: a task whose exception is of class {@link NotSerializableException}
 * (compared by name, so exactly that class) aborts its stage at once, without retries ("there's no point in trying
 * to re-execute it"). The only other such class, {@code TaskOutputFileAlreadyExistException}, is Spark-internal.
 * The alternatives looked at: a listener that cancels the job on the first bad-row failure runs on the listener bus
 * after the scheduler has already relaunched the task, so the retry races it; {@code spark.task.maxFailures=1}
 * would also stop the retries of real transient failures (and is fixed when the SparkContext starts). So a bad row
 * in fail mode leaves the task as a {@code NotSerializableException} carrying the one line ({@link #notRetried}).
 * It reaches the scheduler unwrapped for collects and for file writes too (Spark 4.0's {@code FileFormatDataWriter}
 * wraps the writing of a row, not the reading of its input iterator). The price: Spark does not attach the task's
 * exception to the job's, whose message reads {@code Job aborted due to stage failure: task 0.0 in stage 3.0 (TID 7)
 * had a not serializable result: <the line>}; {@link #badRow} finds the line there (the jobs print only it).
 */
final class QueryCheck {

    /**
     * Spark's wording of a stage aborted by a {@link NotSerializableException} (the one Spark-version detail here),
     * with a line that names a query as this class does: a real unserializable result names a class instead.
     */
    private static final Pattern NOT_RETRIED = Pattern.compile(
            "had a not serializable result: ([^\\n]*\\((?:query_id|context_id)=[^\\n]*)");

    private QueryCheck() {
    }

    /** How a line names a query of a table with a query_id. */
    static String queryId(Object id) {
        return "query_id=" + (id == null ? "null" : String.valueOf(id));
    }

    /** How a line names a query without a query_id: its context, layer and query head. */
    static String row(String contextId, Integer layer, Integer head) {
        return "context_id=" + contextId + " layer=" + layer + " head=" + head;
    }

    /** The KV head a row reads: its ids must be non-null and name a head of the index set. */
    static HeadKey head(DecodePlan p, String contextId, Integer layer, Integer head, String query) {
        if (contextId == null || layer == null || head == null) {
            throw new BadQueryException("context_id, layer and head must not be null (" + query + "); "
                    + "context_id=" + contextId + ", layer=" + layer + ", head=" + head);
        }
        HeadKey key = new HeadKey(contextId, layer, p.kvHead(contextId, layer, head));
        if (head < 0 || !p.entries().containsKey(key)) {
            boolean knownContext = p.entries().keySet().stream().anyMatch(k -> k.contextId().equals(contextId));
            if (!knownContext) {
                throw new BadQueryException("context_id must name a context of the index set " + p.root()
                        + " (" + query + "); context_id=" + contextId);
            }
            throw new BadQueryException(unknownHead(p, contextId, layer, head) + " (" + query + ")");
        }
        return key;
    }

    /**
     * What is wrong with a layer and query head that name no head of a known context: the layers and the query
     * heads each one has ({@code G * kv heads}, from the recorded group size).
     */
    static String unknownHead(DecodePlan p, String contextId, int layer, int head) {
        Map<Integer, Integer> kvHeads = new TreeMap<>();
        for (HeadKey k : p.entries().keySet()) {
            if (k.contextId().equals(contextId)) {
                kvHeads.merge(k.layer(), 1, Integer::sum);
            }
        }
        if (!kvHeads.containsKey(layer)) {
            return "layer must be a layer of context_id=" + contextId + " (" + kvHeads.keySet() + "); layer=" + layer;
        }
        int queryHeads = p.group(contextId, layer) * kvHeads.get(layer);
        return "head must be a query head of context_id=" + contextId + " layer=" + layer + ", in [0, " + queryHeads
                + ") (" + kvHeads.get(layer) + " KV heads x " + p.group(contextId, layer)
                + " query heads per KV head); head=" + head;
    }

    /**
     * The query vector of a row whose head has {@code dim} dimensions: present, readable ({@code values} may fail
     * with a one-line IllegalArgumentException, e.g. a binary of an odd length), of length {@code dim}, finite (a
     * null element reads as NaN).
     */
    static float[] vector(boolean isNull, Supplier<float[]> values, int dim, String query) {
        if (isNull) {
            throw new BadQueryException("query must not be null (" + query + "); query=null");
        }
        float[] vector;
        try {
            vector = values.get();
        } catch (BadQueryException e) {
            throw e;
        } catch (IllegalArgumentException e) {
            throw new BadQueryException(e.getMessage() + " (" + query + ")");
        }
        if (vector.length != dim) {
            throw new BadQueryException("query must have head_dim=" + dim + " values (" + query + "); query.length="
                    + vector.length);
        }
        for (int i = 0; i < vector.length; i++) {
            if (!Float.isFinite(vector[i])) {
                throw new BadQueryException("query must hold finite values (" + query + "); query[" + i + "]="
                        + vector[i]);
            }
        }
        return vector;
    }

    /**
     * Throws the bad row's line as the failure Spark does not retry (see the class comment); never returns. Outside
     * a task (Spark's optimizer evaluates the SQL function over a local relation on the driver) there is no retry to
     * prevent, and {@code bad} itself is thrown.
     */
    static RuntimeException notRetried(BadQueryException bad) {
        return notRetried(bad.getMessage(), bad);
    }

    /**
     * The same for a failure that a retry cannot cure either (the {@code gpu} device on an executor without a usable
     * GPU): {@code line} as the failure Spark does not retry, {@code cause} itself outside a task.
     */
    static RuntimeException notRetried(String line, RuntimeException cause) {
        if (org.apache.spark.TaskContext.get() == null) {
            throw cause;
        }
        NotSerializableException failure = new NotSerializableException(line);
        failure.initCause(cause);
        throw QueryCheck.<RuntimeException>sneaky(failure);
    }

    @SuppressWarnings("unchecked")
    private static <E extends Throwable> E sneaky(Throwable t) throws E {
        throw (E) t;
    }

    /** {@code rows}, with a bad row's exception turned into the failure that is not retried. */
    static <T> Iterator<T> failOnce(Iterator<T> rows) {
        return new Iterator<>() {
            @Override
            public boolean hasNext() {
                try {
                    return rows.hasNext();
                } catch (BadQueryException bad) {
                    throw notRetried(bad);
                }
            }

            @Override
            public T next() {
                try {
                    return rows.next();
                } catch (BadQueryException bad) {
                    throw notRetried(bad);
                }
            }
        };
    }

    /**
     * The one line of the bad row that failed an action ({@code failure}: what the action threw on the driver), or
     * null when it did not fail on a bad row.
     */
    static String badRow(Throwable failure) {
        for (Throwable t = failure; t != null; t = t.getCause() == t ? null : t.getCause()) {
            if (t instanceof BadQueryException) {
                return t.getMessage();
            }
            if (t instanceof org.apache.spark.SparkException && t.getMessage() != null) {
                Matcher m = NOT_RETRIED.matcher(t.getMessage());
                if (m.find()) {
                    return m.group(1);
                }
            }
        }
        return null;
    }
}
