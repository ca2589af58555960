package io.csattention.spark;

import org.apache.spark.sql.catalyst.analysis.NoSuchTableException;
import org.apache.spark.sql.connector.catalog.Identifier;
import org.apache.spark.sql.connector.catalog.Table;
import org.apache.spark.sql.connector.catalog.TableCatalog;
import org.apache.spark.sql.connector.catalog.TableChange;
import org.apache.spark.sql.connector.expressions.Transform;
import org.apache.spark.sql.util.CaseInsensitiveStringMap;

import java.util.Map;

/**
 * {@code spark.sql.catalog.csattention=io.csattention.spark.CSAttentionCatalog}: {@code SELECT ... FROM
 * csattention.`/idx/docs`} reads the index set at that path, as {@code spark.read.format("csattention").load(path)}
 * does (one row per context, layer and KV head). Spark's own SQL on files ({@code parquet.`path`}) serves file
 * formats only: its rule ResolveSQLOnFile refuses a DataSource V2 provider (UNSUPPORTED_DATASOURCE_FOR_DIRECT_QUERY).
 * A catalog of the same name is resolved before that rule, with the path as the table's name, so the query reads
 * the same table the DataSource does. The catalog lists nothing and creates nothing: an index set is named by its
 * path and built with {@code df.write.format("csattention")} or {@link CSAttention#buildIndexes}.
 */
public final class CSAttentionCatalog implements TableCatalog {

    private String name = CSAttentionDataSource.NAME;

    @Override
    public void initialize(String name, CaseInsensitiveStringMap options) {
        this.name = name;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public Identifier[] listTables(String[] namespace) {
        return new Identifier[0];
    }

    /** The index set whose path is {@code ident}'s name; a name with a namespace is no index set. */
    @Override
    public Table loadTable(Identifier ident) throws NoSuchTableException {
        if (ident.namespace().length != 0 || ident.name().isBlank()) {
            throw new NoSuchTableException(ident);
        }
        return new CSAttentionDataSource().getTable(IndexSetScan.SCHEMA, new Transform[0],
                Map.of("path", ident.name()));
    }

    @Override
    public Table alterTable(Identifier ident, TableChange... changes) {
        throw unsupported("alter");
    }

    @Override
    public boolean dropTable(Identifier ident) {
        throw unsupported("drop");
    }

    @Override
    public void renameTable(Identifier oldIdent, Identifier newIdent) {
        throw unsupported("rename");
    }

    private static UnsupportedOperationException unsupported(String what) {
        return new UnsupportedOperationException("catalog " + CSAttentionDataSource.NAME + " only reads index sets "
                + "by their path; operation=" + what);
    }
}
