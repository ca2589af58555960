package io.csattention.jobs;

import picocli.CommandLine;
import picocli.CommandLine.Command;

import java.io.PrintWriter;

/**
 * The entry point of {@code csattention-jobs.jar}: one subcommand per job. Run as {@code java -jar
 * csattention-jobs.jar <command> ...} (embedded Spark {@code local[*]} when a command needs Spark and no master is
 * given) or through {@code spark-submit --class io.csattention.jobs.Main}.
 *
 * <p>Every failure a user can cause ends with one line on stderr and exit code 2 or 1 ({@link CommandRunner}); every
 * numeric option is range-checked ({@link NumericOptions}) before the command runs.
 */
@Command(name = "csattention-jobs", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        description = "Centroid-Scoring Attention over long reusable contexts: evaluation, model and Spark jobs.",
        subcommands = {
                DemoCommand.class,
                BuildIndexCommand.class,
                DecodeCommand.class,
                GenerateCommand.class,
                EvalTensorsCommand.class,
                EvalSyntheticCommand.class,
                EvalModelCommand.class,
                DumpQkvCommand.class,
                BenchCommand.class,
                BenchSparkCommand.class,
                BenchModelCommand.class,
                GpuBenchCommand.class,
                SparkHomeCommand.class,
                CommandLine.HelpCommand.class
        })
public final class Main implements Runnable {

    public static void main(String[] args) {
        System.exit(run(args, new PrintWriter(System.out, true), new PrintWriter(System.err, true)));
    }

    /** Runs one command line and returns its exit code; used by tests without exiting the JVM. */
    public static int run(String[] args, PrintWriter out, PrintWriter err) {
        return CommandRunner.run(new Main(), args, out, err);
    }

    @Override
    public void run() {
        new CommandLine(this).usage(System.out);
    }

    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            String version = Main.class.getPackage().getImplementationVersion();
            return new String[] {"csattention-jobs " + (version == null ? "development build" : version)};
        }
    }
}
