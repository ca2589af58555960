package io.csattention.spark;

import org.apache.hadoop.conf.Configuration;
import org.apache.parquet.hadoop.ParquetReader;
import org.apache.spark.broadcast.Broadcast;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.catalyst.CatalystTypeConverters;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.connector.read.Batch;
import org.apache.spark.sql.connector.read.InputPartition;
import org.apache.spark.sql.connector.read.PartitionReader;
import org.apache.spark.sql.connector.read.PartitionReaderFactory;
import org.apache.spark.sql.connector.read.Scan;
import org.apache.spark.sql.connector.read.ScanBuilder;
import org.apache.spark.sql.execution.datasources.parquet.ParquetReadSupport;
import org.apache.spark.sql.types.StructType;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.Arrays;
import java.util.Iterator;
import java.util.Map;
import java.util.NoSuchElementException;

/**
 * {@code spark.read.format("csattention").option("queries", path).load(indexPath)}: the decode of a Parquet queries
 * table (the columns of {@link QueriesSchema}) against the index set, as the DataSource's read. The output is the
 * decode job's ({@link CSAttention#decode}): the same columns and the same values, with the query heads mapped to
 * KV heads by the recorded group size.
 *
 * <p>One input partition per Parquet file of the queries path, in the order of the files' names; each partition's
 * rows come out in the file's row order, so the read's row order is the files' (without an {@code orderBy}). The
 * files are read on the executors with Spark's own Parquet record reader ({@link ParquetReadSupport}, the one Spark
 * version detail of this class) and decoded by the decode stage of the job ({@link DecodePartition}), up to
 * {@link DecodePartition#FILE_WINDOW} rows at a time grouped by head (so a task borrows each head of the executor
 * cache once per window) and given back in the file's order. Unlike {@link CSAttention#decode} the read does not
 * shuffle rows into tasks by head: a file's task loads every head its rows name.
 */
final class QueriesDecodeScan implements ScanBuilder, Scan, Batch {

    /** The option naming the queries table's Parquet path. */
    static final String QUERIES = "queries";

    private final String root;
    private final String queriesPath;
    private final StructType queriesSchema;
    private final QueriesSchema schema;
    private final Broadcast<DecodePlan> plan;
    private final CSAttentionMetrics metrics;
    private final String[] files;
    private final HadoopConf conf;

    QueriesDecodeScan(String root, Map<String, String> options) {
        SparkSession spark = SparkSession.active();
        Map<String, String> settings = new java.util.TreeMap<>(String.CASE_INSENSITIVE_ORDER);
        settings.putAll(options);
        this.root = root;
        this.queriesPath = settings.remove(QUERIES);
        settings.remove("path");
        Dataset<Row> queries = queries(spark, queriesPath);
        CSAttentionOptions parsed = CSAttentionOptions.from(spark, settings);
        this.queriesSchema = queries.schema();
        this.schema = QueriesSchema.of(queriesSchema, parsed);
        this.files = queries.inputFiles();
        Arrays.sort(files);
        this.conf = new HadoopConf(readerConf(spark));
        this.metrics = new CSAttentionMetrics(spark.sparkContext());
        try {
            this.plan = CSAttention.plan(queries, schema, root, parsed);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * The Hadoop configuration of the executors' Parquet reader: the session's, with the session's SQL settings
     * (Spark's Parquet reader takes its settings, e.g. {@code spark.sql.parquet.binaryAsString}, from there).
     */
    private static Configuration readerConf(SparkSession spark) {
        Configuration c = new Configuration(spark.sparkContext().hadoopConfiguration());
        scala.collection.Iterator<scala.Tuple4<String, String, String, String>> defined =
                spark.sessionState().conf().getAllDefinedConfs().iterator();
        while (defined.hasNext()) {
            scala.Tuple4<String, String, String, String> conf = defined.next();
            if (conf._2() != null && !conf._2().startsWith("<")) {
                c.set(conf._1(), conf._2());
            }
        }
        org.apache.spark.sql.internal.SQLConf$ entries = org.apache.spark.sql.internal.SQLConf$.MODULE$;
        org.apache.spark.sql.internal.SQLConf session = spark.sessionState().conf();
        // read by Spark's Parquet schema converter with no default, and not all of them are public settings
        for (org.apache.spark.internal.config.ConfigEntry<?> entry : java.util.List.of(
                entries.PARQUET_BINARY_AS_STRING(), entries.PARQUET_INT96_AS_TIMESTAMP(), entries.CASE_SENSITIVE(),
                entries.PARQUET_INFER_TIMESTAMP_NTZ_ENABLED(), entries.LEGACY_PARQUET_NANOS_AS_LONG(),
                entries.PARQUET_FIELD_ID_READ_ENABLED())) {
            c.set(entry.key(), session.getConfString(entry.key(), entry.defaultValueString()));
        }
        return c;
    }

    /** The decode's output schema for the queries at {@code options}' {@value #QUERIES} path. */
    static StructType outputSchema(Map<String, String> options) {
        SparkSession spark = SparkSession.active();
        Map<String, String> settings = new java.util.TreeMap<>(String.CASE_INSENSITIVE_ORDER);
        settings.putAll(options);
        Dataset<Row> queries = queries(spark, settings.remove(QUERIES));
        settings.remove("path");
        return QueriesSchema.of(queries.schema(), CSAttentionOptions.from(spark, settings)).output();
    }

    private static Dataset<Row> queries(SparkSession spark, String path) {
        if (path == null || path.isBlank()) {
            throw new IllegalArgumentException("option queries must name a Parquet queries table; queries=" + path);
        }
        return spark.read().parquet(path);
    }

    @Override
    public Scan build() {
        return this;
    }

    @Override
    public StructType readSchema() {
        return schema.output();
    }

    @Override
    public String description() {
        return "csattention decode of " + queriesPath + " against " + root;
    }

    @Override
    public Batch toBatch() {
        return this;
    }

    /** One Parquet file of the queries table. */
    record QueriesFile(String path) implements InputPartition {
    }

    @Override
    public InputPartition[] planInputPartitions() {
        return Arrays.stream(files).map(QueriesFile::new).toArray(InputPartition[]::new);
    }

    @Override
    public PartitionReaderFactory createReaderFactory() {
        DecodePartition stage = new DecodePartition(plan, schema, metrics);
        String requested = queriesSchema.json();
        StructType in = queriesSchema;
        StructType out = schema.output();
        HadoopConf hadoop = conf;
        return (PartitionReaderFactory) partition -> {
            String file = ((QueriesFile) partition).path();
            try {
                return new DecodeReader(stage, hadoop, requested, in, out, file);
            } catch (IOException e) {
                throw new UncheckedIOException("cannot read queries file " + file + ": " + e.getMessage(), e);
            }
        };
    }

    /** Reads one queries file, decodes its rows block by block and hands out the output rows. */
    private static final class DecodeReader implements PartitionReader<InternalRow> {
        private final ParquetReader<InternalRow> reader;
        private final Iterator<Row> decoded;
        private final scala.Function1<Object, Object> toCatalyst;
        private InternalRow current;

        DecodeReader(DecodePartition stage, HadoopConf hadoop, String requested, StructType in, StructType out,
                     String file) throws IOException {
            Configuration c = new Configuration(hadoop.get());
            c.set(ParquetReadSupport.SPARK_ROW_REQUESTED_SCHEMA(), requested);
            this.reader = ParquetReader.builder(new ParquetReadSupport(), new org.apache.hadoop.fs.Path(file))
                    .withConf(c).build();
            scala.Function1<Object, Object> toScala = CatalystTypeConverters.createToScalaConverter(in);
            this.toCatalyst = CatalystTypeConverters.createToCatalystConverter(out);
            Iterator<Row> rows = new Iterator<>() {
                private InternalRow next = read();

                @Override
                public boolean hasNext() {
                    return next != null;
                }

                @Override
                public Row next() {
                    if (next == null) {
                        throw new NoSuchElementException();
                    }
                    Row row = (Row) toScala.apply(next);
                    next = read();
                    return row;
                }
            };
            this.decoded = stage.file(rows);
        }

        private InternalRow read() {
            try {
                return reader.read();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }

        @Override
        public boolean next() {
            if (!decoded.hasNext()) {
                return false;
            }
            current = (InternalRow) toCatalyst.apply(decoded.next());
            return true;
        }

        @Override
        public InternalRow get() {
            return current;
        }

        @Override
        public void close() throws IOException {
            reader.close();
        }
    }
}
