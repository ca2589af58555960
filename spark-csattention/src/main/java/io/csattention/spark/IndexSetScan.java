package io.csattention.spark;

import io.csattention.format.IndexFileSummary;
import org.apache.hadoop.fs.Path;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.GenericInternalRow;
import org.apache.spark.sql.connector.read.Batch;
import org.apache.spark.sql.connector.read.InputPartition;
import org.apache.spark.sql.connector.read.PartitionReader;
import org.apache.spark.sql.connector.read.PartitionReaderFactory;
import org.apache.spark.sql.connector.read.Scan;
import org.apache.spark.sql.connector.read.ScanBuilder;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.unsafe.types.UTF8String;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * {@code spark.read.format("csattention").load(path)}: the committed index set as a table, one row per context,
 * layer and KV head with its metadata and sizes, read from each file's header on the executors. The query heads that
 * read a KV head are {@code first_query_head} to {@code first_query_head + query_heads_per_kv_head - 1} (both null in
 * index sets written before the group size was recorded); the RoPE columns are null for a head indexed without
 * RoPE.
 */
final class IndexSetScan implements ScanBuilder, Scan, Batch {

    static final StructType SCHEMA = new StructType()
            .add("context_id", DataTypes.StringType, false)
            .add("layer", DataTypes.IntegerType, false)
            .add("kv_head", DataTypes.IntegerType, false)
            .add("query_heads_per_kv_head", DataTypes.IntegerType, true)
            .add("first_query_head", DataTypes.IntegerType, true)
            .add("keys", DataTypes.IntegerType, false)
            .add("head_dim", DataTypes.IntegerType, false)
            .add("subspaces", DataTypes.IntegerType, false)
            .add("centroids", DataTypes.IntegerType, false)
            .add("list_length", DataTypes.IntegerType, false)
            .add("list_fraction", DataTypes.DoubleType, false)
            .add("seed", DataTypes.LongType, false)
            .add("distance", DataTypes.StringType, false)
            .add("missing_score", DataTypes.StringType, false)
            .add("rope_base", DataTypes.DoubleType, true)
            .add("rope_style", DataTypes.StringType, true)
            .add("position_free_bands", DataTypes.IntegerType, false)
            .add("reference_position", DataTypes.LongType, true)
            .add("format_version", DataTypes.IntegerType, false)
            .add("index_bytes", DataTypes.LongType, false)
            .add("kv_bytes", DataTypes.LongType, false)
            .add("file_bytes", DataTypes.LongType, false)
            .add("checksum", DataTypes.LongType, false)
            .add("file", DataTypes.StringType, false)
            .add("commit", DataTypes.LongType, false);

    private static final int HEADS_PER_PARTITION = 64;

    private final String root;
    private final HadoopConf conf;
    private final IndexSet.Manifest manifest;

    IndexSetScan(String root, HadoopConf conf) {
        this.root = root;
        this.conf = conf;
        try {
            this.manifest = IndexSet.require(conf, root);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Override
    public Scan build() {
        return this;
    }

    @Override
    public StructType readSchema() {
        return SCHEMA;
    }

    @Override
    public String description() {
        return "csattention index set " + root + " (commit " + manifest.commit() + ")";
    }

    @Override
    public Batch toBatch() {
        return this;
    }

    /** Up to {@value #HEADS_PER_PARTITION} manifest entries. */
    record Heads(List<IndexSet.Entry> entries) implements InputPartition {
    }

    @Override
    public InputPartition[] planInputPartitions() {
        List<InputPartition> parts = new ArrayList<>();
        List<IndexSet.Entry> heads = manifest.heads();
        for (int from = 0; from < heads.size(); from += HEADS_PER_PARTITION) {
            parts.add(new Heads(List.copyOf(heads.subList(from, Math.min(heads.size(), from + HEADS_PER_PARTITION)))));
        }
        return parts.toArray(new InputPartition[0]);
    }

    @Override
    public PartitionReaderFactory createReaderFactory() {
        String path = root;
        HadoopConf hadoop = conf;
        long commit = manifest.commit();
        return (PartitionReaderFactory) partition -> new SummaryReader(path, hadoop, commit, (Heads) partition);
    }

    private static final class SummaryReader implements PartitionReader<InternalRow> {
        private final String root;
        private final HadoopConf conf;
        private final long commit;
        private final List<IndexSet.Entry> entries;
        private int next = -1;

        SummaryReader(String root, HadoopConf conf, long commit, Heads heads) {
            this.root = root;
            this.conf = conf;
            this.commit = commit;
            this.entries = heads.entries();
        }

        @Override
        public boolean next() {
            return ++next < entries.size();
        }

        @Override
        public InternalRow get() {
            IndexSet.Entry e = entries.get(next);
            IndexFileSummary s;
            try {
                s = IndexSet.readSummary(new Path(root).getFileSystem(conf.get()), root, e);
            } catch (IOException ex) {
                throw new UncheckedIOException(ex);
            }
            long lists = (long) s.subspaces() * s.centroidCount();
            long scoring = s.rope() == null ? 0 : 4L * s.scoringCentroids().length;
            long indexBytes = 4L * s.centroids().length + scoring + 8L * lists + 8L * lists * s.listLength();
            Integer group = e.queryHeadsPerKvHead() > 0 ? e.queryHeadsPerKvHead() : null;
            int positionFree = 0;
            for (boolean free : s.positionFree()) {
                positionFree += free ? 1 : 0;
            }
            return new GenericInternalRow(new Object[] {
                    UTF8String.fromString(s.contextId()), s.layer(), s.kvHead(), group,
                    group == null ? null : s.kvHead() * group, s.keys(), s.dim(), s.subspaces(),
                    s.centroidCount(), s.listLength(), s.listFraction(), s.seed(),
                    UTF8String.fromString(s.distance().name().toLowerCase(Locale.ROOT)),
                    UTF8String.fromString(s.missingScore().name().toLowerCase(Locale.ROOT)),
                    s.rope() == null ? null : s.rope().base(),
                    s.rope() == null ? null : UTF8String.fromString(s.rope().style().name().toLowerCase(Locale.ROOT)),
                    positionFree, s.rope() == null ? null : s.rope().referencePosition(), s.version(), indexBytes,
                    8L * s.keys() * s.dim(), e.bytes(), e.checksum(), UTF8String.fromString(e.file()), commit});
        }

        @Override
        public void close() {
        }
    }
}
