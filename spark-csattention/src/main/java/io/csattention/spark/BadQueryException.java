package io.csattention.spark;

/**
 * A query row that cannot be decoded; the message is the one line the user sees, naming the query (see
 * {@link QueryCheck}) and the problem. With {@code onError=route} it becomes the row's {@code error}; otherwise it
 * fails the task once ({@link QueryCheck#notRetried}).
 */
final class BadQueryException extends IllegalArgumentException {
    BadQueryException(String message) {
        super(message);
    }
}
