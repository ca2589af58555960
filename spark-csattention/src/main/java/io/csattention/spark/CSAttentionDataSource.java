package io.csattention.spark;

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
import org.apache.spark.sql.sources.DataSourceRegister;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.sql.util.CaseInsensitiveStringMap;

import java.util.EnumSet;
import java.util.Map;
import java.util.Set;

/**
 * The DataSource V2 format {@value #NAME}: {@code df.write.format("csattention").mode("overwrite").save(path)} builds
 * an index set from a contexts table ({@link IndexSetWrite}); {@code spark.read.format("csattention").load(path)}
 * lists it ({@link IndexSetScan}); with {@code .option("queries", queriesParquetPath)} the read decodes that queries
 * table against it ({@link QueriesDecodeScan}: the decode job's output). The paths are any Hadoop FileSystem paths.
 */
public final class CSAttentionDataSource implements TableProvider, DataSourceRegister {

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
        return new IndexSetTable(schema, path);
    }

    /** The index set at one path; the schema is the index table's when read and the contexts' when written. */
    private record IndexSetTable(StructType schema, String path) implements SupportsRead, SupportsWrite {

        @Override
        public String name() {
            return NAME + "(" + path + ")";
        }

        @Override
        public Set<TableCapability> capabilities() {
            return EnumSet.of(TableCapability.BATCH_READ, TableCapability.BATCH_WRITE, TableCapability.TRUNCATE);
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
