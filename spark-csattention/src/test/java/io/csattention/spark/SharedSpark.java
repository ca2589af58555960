package io.csattention.spark;

import org.apache.spark.sql.SparkSession;

/**
 * The one local SparkSession of the ordinary Spark tests: two cores, a task may fail once and be retried
 * ({@code local[2,2]}), no UI, the CSAttention SQL extension and catalog installed. Stopped when the test JVM exits.
 */
final class SharedSpark {

    private static SparkSession session;

    private SharedSpark() {
    }

    static synchronized SparkSession get() {
        if (session == null || session.sparkContext().isStopped()) {
            session = SparkSession.builder()
                    .master("local[2,2]")
                    .appName("csattention-tests")
                    .config("spark.ui.enabled", "false")
                    .config("spark.sql.shuffle.partitions", "3")
                    .config("spark.sql.adaptive.enabled", "false")
                    .config("spark.sql.extensions", CSAttentionExtensions.class.getName())
                    .config("spark.sql.catalog." + CSAttentionDataSource.NAME, CSAttentionCatalog.class.getName())
                    .getOrCreate();
            SparkSession started = session;
            Runtime.getRuntime().addShutdownHook(new Thread(started::stop));
        }
        return session;
    }

    /** Stops the shared session so that a test can run its own SparkContext (one per JVM); get() restarts it. */
    static synchronized void stop() {
        if (session != null) {
            session.stop();
            session = null;
        }
        SparkSession.clearActiveSession();
        SparkSession.clearDefaultSession();
    }
}
