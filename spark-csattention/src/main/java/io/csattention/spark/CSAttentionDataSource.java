package io.csattention.spark;

import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SQLContext;
import org.apache.spark.sql.SaveMode;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.connector.catalog.SupportsRead;
import org.apache.spark.sql.connector.catalog.SupportsWrite;
import org.apache.spark.sql.connector.catalog.Table;
import org.apache.spark.sql.connector.catalog.TableCapability;
import org.apache.spark.sql.connector.catalog.TableProvider;
import org.apache.spark.sql.connector.expressions.Transform;
import org.apache.spark.sql.connector.read.ScanBuilder;
import org.apache.spark.sql.connector.write.LogicalWriteInfo;
import org.apache.spark.sql.connector.write.WriteBuilder;
import org.apache.spark.sql.sources.BaseRelation;
import org.apache.spark.sql.sources.CreatableRelationProvider;
import org.apache.spark.sql.sources.DataSourceRegister;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.sql.util.CaseInsensitiveStringMap;

import java.util.EnumSet;
import java.util.Map;
import java.util.Set;

/**
 * The DataSource V2 format {@value #NAME}: {@code df.write.format("csattention").save(path)} builds an index set from
 * a contexts table ({@link IndexSetWrite}); {@code spark.read.format("csattention").load(path)} lists it
 * ({@link IndexSetScan}); with {@code .option("queries", queriesParquetPath)} the read decodes that queries table
 * against it ({@link QueriesDecodeScan}: the decode job's output). The paths are any Hadoop FileSystem paths.
 *
 * <p><b>Save modes.</b> Spark's DataFrameWriter refuses the default mode, errorifexists (and ignore), for a V2 table
 * that can be written: it asks such tables for append or overwrite only. So the table declares batch writes only
 * when the write carries the option {@value CSAttention#MODE}, as {@link CSAttention#buildIndexes} always passes it;
 * any other {@code save()} falls back to {@link #createRelation}, which gets Spark's save mode and builds through
 * {@link CSAttention#buildIndexes}: one build path, whose checks (errorifexists refuses a committed set before any
 * work) every mode shares.
 */
public final class CSAttentionDataSource implements TableProvider, DataSourceRegister, CreatableRelationProvider {

    public static final String NAME = "csattention";

    @Override
    public String shortName() {
        return NAME;
    }

    @Override
    public StructType inferSchema(CaseInsensitiveStringMap options) {
        return options.containsKey(QueriesDecodeScan.QUERIES)
                ? QueriesDecodeScan.outputSchema(options.asCaseSensitiveMap()) : IndexSetScan.SCHEMA;
    }

    @Override
    public boolean supportsExternalMetadata() {
        return true;
    }

    @Override
    public Table getTable(StructType schema, Transform[] partitioning, Map<String, String> properties) {
        String path = properties.get("path");
        if (path == null || path.isBlank()) {
            throw new IllegalArgumentException("format csattention needs a path; path=" + path);
        }
        return new IndexSetTable(schema, path, properties.containsKey(CSAttention.MODE));
    }

    /**
     * {@code df.write.format("csattention").mode(m).save(path)} without the option {@value CSAttention#MODE}: the
     * contexts table built into the index set at {@code path} by {@link CSAttention#buildIndexes}, in Spark's save
     * mode {@code m}; ignore builds nothing when the path holds a committed set.
     */
    @Override
    public BaseRelation createRelation(SQLContext sqlContext, SaveMode mode,
                                       scala.collection.immutable.Map<String, String> parameters, Dataset<Row> data) {
        Map<String, String> options = new java.util.TreeMap<>(String.CASE_INSENSITIVE_ORDER);
        options.putAll(scala.jdk.javaapi.CollectionConverters.asJava(parameters));
        String path = options.remove("path");
        if (path == null || path.isBlank()) {
            throw new IllegalArgumentException("format csattention needs a path; path=" + path);
        }
        try {
            boolean build = true;
            if (mode == SaveMode.Ignore) {
                HadoopConf conf = new HadoopConf(sqlContext.sparkContext().hadoopConfiguration());
                org.apache.hadoop.fs.Path root = new org.apache.hadoop.fs.Path(path);
                build = IndexSet.latest(root.getFileSystem(conf.get()), root).isEmpty();
            }
            if (build) {
                options.put(CSAttention.MODE, switch (mode) {
                    case Append -> "append";
                    case Overwrite -> "overwrite";
                    case ErrorIfExists, Ignore -> "errorifexists";
                });
                CSAttention.buildIndexes(data, path, options);
            }
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
        StructType schema = IndexSetScan.SCHEMA;
        return new BaseRelation() {
            @Override
            public SQLContext sqlContext() {
                return sqlContext;
            }

            @Override
            public StructType schema() {
                return schema;
            }
        };
    }

    /**
     * The index set at one path; the schema is the index table's when read and the contexts' when written. It
     * declares batch writes only to a write that says its mode (see the class comment).
     */
    private record IndexSetTable(StructType schema, String path, boolean writable)
            implements SupportsRead, SupportsWrite {

        @Override
        public String name() {
            return NAME + "(" + path + ")";
        }

        @Override
        public Set<TableCapability> capabilities() {
            return writable
                    ? EnumSet.of(TableCapability.BATCH_READ, TableCapability.BATCH_WRITE, TableCapability.TRUNCATE)
                    : EnumSet.of(TableCapability.BATCH_READ);
        }

        @Override
        public ScanBuilder newScanBuilder(CaseInsensitiveStringMap options) {
            if (options.containsKey(QueriesDecodeScan.QUERIES)) {
                return new QueriesDecodeScan(path, options.asCaseSensitiveMap());
            }
            return new IndexSetScan(path, new HadoopConf(SparkSession.active().sparkContext().hadoopConfiguration()));
        }

        @Override
        public WriteBuilder newWriteBuilder(LogicalWriteInfo info) {
            return new IndexSetWrite(info, path);
        }
    }
}
