package io.csattention.jobs;

import java.io.IOException;
import java.io.UncheckedIOException;

/** Maps exceptions to the one line a user sees. */
final class UserErrors {

    private UserErrors() {
    }

    /** Bad arguments and unreadable input: exit code 2. */
    static boolean isUserError(Throwable exception) {
        Throwable root = root(exception);
        return root instanceof IllegalArgumentException || root instanceof IOException;
    }

    static String message(Throwable exception) {
        Throwable root = root(exception);
        String message = root.getMessage();
        return message == null || message.isBlank() ? root.getClass().getSimpleName() : message;
    }

    private static Throwable root(Throwable exception) {
        Throwable current = exception;
        while ((current instanceof UncheckedIOException || current.getCause() != null
                && (current instanceof java.util.concurrent.CompletionException
                || current instanceof java.util.concurrent.ExecutionException
                || current instanceof RuntimeException && current.getClass() == RuntimeException.class))
                && current.getCause() != null) {
            current = current.getCause();
        }
        return current;
    }
}
