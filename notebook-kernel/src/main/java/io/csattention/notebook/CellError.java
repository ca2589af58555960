package io.csattention.notebook;

/**
 * A cell that failed: its message is what the notebook shows, one line for the user's errors (the command line's
 * {@code error: <what>; <name>=<value>}), the compiler's messages for a Scala cell that does not compile.
 */
public final class CellError extends Exception {

    CellError(String message, Throwable cause) {
        super(message, cause, false, false);
    }

    /**
     * The one line of a user's error ({@link io.csattention.jobs.Notebooks#errorLine}), or for anything else the
     * exception's own text with its stack trace (a bug to report, not bad input).
     */
    static CellError of(Throwable error) {
        if (error instanceof CellError cell) {
            return cell;
        }
        String line = io.csattention.jobs.Notebooks.errorLine(error);
        if (line != null) {
            return new CellError(line, error);
        }
        java.io.StringWriter trace = new java.io.StringWriter();
        error.printStackTrace(new java.io.PrintWriter(trace));
        return new CellError(trace.toString().strip(), error);
    }
}
