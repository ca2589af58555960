package io.csattention.jobs;

import picocli.CommandLine;

import java.io.PrintWriter;
import java.util.Arrays;

/**
 * Runs one picocli command with the error handling every command shares: a failure a user can cause ends with one
 * line on stderr, {@code error: <what>; <name>=<value>}, and exit code 2 for bad arguments or input, 1 for anything
 * else; {@code --stacktrace} adds the stack trace. Every numeric option is range-checked ({@link NumericOptions})
 * before the command runs.
 */
final class CommandRunner {

    private CommandRunner() {
    }

    /** Runs {@code command} (a {@code @Command} object) on {@code args} and returns its exit code. */
    static int run(Object command, String[] args, PrintWriter out, PrintWriter err) {
        boolean stackTrace = Arrays.asList(args).contains("--stacktrace");
        String[] rest = Arrays.stream(args).filter(a -> !a.equals("--stacktrace")).toArray(String[]::new);
        CommandLine commandLine = new CommandLine(command).setCaseInsensitiveEnumValuesAllowed(true);
        commandLine.setOut(out);
        commandLine.setErr(err);
        commandLine.setParameterExceptionHandler((exception, arguments) -> {
            err.println("error: " + exception.getMessage() + " (run with --help for usage)");
            return 2;
        });
        commandLine.setExecutionStrategy(NumericOptions::checkThenRun);
        commandLine.setExecutionExceptionHandler((exception, cmd, parseResult) -> {
            err.println("error: " + UserErrors.message(exception));
            if (stackTrace) {
                exception.printStackTrace(err);
            }
            return UserErrors.isUserError(exception) ? 2 : 1;
        });
        return commandLine.execute(rest);
    }
}
