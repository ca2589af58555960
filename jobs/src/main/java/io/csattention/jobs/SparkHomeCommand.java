package io.csattention.jobs;

import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Properties;
import java.util.concurrent.Callable;

/**
 * {@code spark-home}: a Spark home for a standalone cluster where no Spark distribution is installed. A standalone
 * worker builds its executors' command line from {@code SPARK_HOME/jars/*} and {@code SPARK_HOME/conf}, and needs
 * {@code SPARK_SCALA_VERSION} (a distribution's {@code bin/load-spark-env.sh} sets it; without it the worker fails
 * with "Cannot find any build directories"). This jar holds Spark, so the home is: {@code jars/} with a copy of it
 * (a copy, not a link: the folder is copied to every worker machine), {@code conf/log4j2.properties} (the project's
 * {@code conf/}), {@code conf/spark-defaults.conf} with the JVM flags for the executors, and {@code bin/spark-class}
 * and {@code bin/spark-submit}, which set {@code SPARK_HOME} and {@code SPARK_SCALA_VERSION} and run a Spark class on
 * these jars with the JVM flags, as a distribution's scripts of the same names do.
 */
@Command(name = "spark-home", mixinStandardHelpOptions = true,
        description = {"Lays out a Spark home for a standalone cluster without a Spark distribution (jars/ with this "
                + "jar, conf/, bin/spark-class and bin/spark-submit) and prints the commands that start a master and "
                + "workers and submit a job to them."})
final class SparkHomeCommand implements Callable<Integer> {

    /** The parent pom's JVM flags, filled in when the jar is built. */
    static final String JVM_FLAGS_RESOURCE = "/io/csattention/jobs/jvm-flags.properties";

    static final String JAR_NAME = "csattention-jobs.jar";

    @Spec
    CommandSpec spec;

    @Option(names = "--out", required = true, description = "Folder of the Spark home (must not exist).")
    Path out;

    @Option(names = "--host", defaultValue = "127.0.0.1", description = "The master's host name or address, as the "
            + "workers and the driver reach it, for the printed commands (default ${DEFAULT-VALUE}).")
    String host;

    @Override
    public Integer call() throws IOException {
        if (Files.exists(out)) {
            throw new IllegalArgumentException("--out must not exist yet; --out=" + out);
        }
        Path jar = runningJar();
        Path home = out.toAbsolutePath().normalize();
        Path jars = Files.createDirectories(home.resolve("jars"));
        Files.copy(jar, jars.resolve(JAR_NAME));
        Path conf = Files.createDirectories(home.resolve("conf"));
        try (InputStream log4j = resource("/conf/log4j2.properties")) {
            Files.copy(log4j, conf.resolve("log4j2.properties"));
        }
        String flags = jvmFlags();
        Files.writeString(conf.resolve("spark-defaults.conf"), String.join("\n",
                "# Written by csattention-jobs spark-home. The executors' JVM flags: the Vector API for the SIMD",
                "# kernels and the opens Spark needs on Java 17 (the parent pom's csattention.jvm.flags). The driver",
                "# gets them from bin/spark-class.",
                "spark.executor.extraJavaOptions  " + flags,
                ""), StandardCharsets.UTF_8);
        Path bin = Files.createDirectories(home.resolve("bin"));
        script(bin.resolve("spark-class"), String.join("\n",
                "#!/usr/bin/env bash",
                "# Written by csattention-jobs spark-home: runs a Spark class on this home's jars, as a Spark",
                "# distribution's bin/spark-class does. A worker started here builds its executors' command from",
                "# SPARK_HOME (jars/ and conf/) and SPARK_SCALA_VERSION. JAVA_OPTS adds JVM options (e.g. -Xmx).",
                "export SPARK_HOME=\"$(cd \"$(dirname \"${BASH_SOURCE[0]}\")/..\" && pwd)\"",
                "export SPARK_SCALA_VERSION=" + scalaBinaryVersion(),
                "exec \"${JAVA_HOME:+$JAVA_HOME/bin/}java\" " + flags
                        + " $JAVA_OPTS -cp \"$SPARK_HOME/conf:$SPARK_HOME/jars/*\" \"$@\"",
                ""));
        script(bin.resolve("spark-submit"), String.join("\n",
                "#!/usr/bin/env bash",
                "# Written by csattention-jobs spark-home: spark-submit on this home's jars (client deploy mode).",
                "exec \"$(dirname \"${BASH_SOURCE[0]}\")/spark-class\" org.apache.spark.deploy.SparkSubmit \"$@\"",
                ""));
        PrintWriter stdout = spec.commandLine().getOut();
        String master = "spark://" + host + ":7077";
        stdout.printf("Spark home %s: Spark %s for Scala %s with the csattention jobs%n", home, sparkVersion(),
                scalaBinaryVersion());
        stdout.printf("copy it to the same path on every machine of the cluster; bin/spark-class sets "
                + "SPARK_HOME=%s and SPARK_SCALA_VERSION=%s%n", home, scalaBinaryVersion());
        stdout.printf("master : %s/bin/spark-class org.apache.spark.deploy.master.Master --host %s --port 7077%n",
                home, host);
        stdout.printf("worker : %s/bin/spark-class org.apache.spark.deploy.worker.Worker --cores 4 --memory 8g %s%n",
                home, master);
        stdout.printf("submit : %s/bin/spark-submit --master %s --class %s %s/jars/%s decode --queries ... "
                + "--index ... --out ...%n", home, master, Main.class.getName(), home, JAR_NAME);
        return 0;
    }

    /** The jar this class was loaded from; the command copies it, so it must run from the jobs jar. */
    private static Path runningJar() {
        Path location;
        try {
            location = Path.of(SparkHomeCommand.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        } catch (URISyntaxException | RuntimeException e) {
            throw new IllegalStateException("spark-home cannot find the jar it runs from", e);
        }
        if (!Files.isRegularFile(location) || !location.toString().endsWith(".jar")) {
            throw new IllegalArgumentException("spark-home must run from csattention-jobs.jar (java -jar "
                    + "jobs/target/csattention-jobs.jar spark-home ...); running from=" + location);
        }
        return location;
    }

    /** The JVM flags every Spark JVM of the jobs needs, as one command-line string. */
    static String jvmFlags() throws IOException {
        Properties p = new Properties();
        try (InputStream in = resource(JVM_FLAGS_RESOURCE)) {
            p.load(in);
        }
        return p.getProperty("flags").strip();
    }

    private static InputStream resource(String name) throws IOException {
        InputStream in = SparkHomeCommand.class.getResourceAsStream(name);
        if (in == null) {
            throw new IOException("resource missing from the jobs jar; resource=" + name);
        }
        return in;
    }

    static String sparkVersion() {
        return org.apache.spark.package$.MODULE$.SPARK_VERSION();
    }

    /** 2.13 for Scala 2.13.16: what SPARK_SCALA_VERSION names. */
    static String scalaBinaryVersion() {
        String[] parts = scala.util.Properties.versionNumberString().split("\\.");
        return parts[0] + "." + parts[1];
    }

    private static void script(Path file, String text) throws IOException {
        Files.writeString(file, text, StandardCharsets.UTF_8);
        Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rwxr-xr-x"));
    }
}
