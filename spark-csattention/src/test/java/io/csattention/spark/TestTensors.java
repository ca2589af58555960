package io.csattention.spark;

import io.csattention.core.FloatMatrix;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/** Small seeded contexts and queries for the Spark tests: keys with a few strong directions, queries near them. */
final class TestTensors {

    static final StructType CONTEXTS = new StructType()
            .add("context_id", DataTypes.StringType)
            .add("layer", DataTypes.IntegerType)
            .add("kv_head", DataTypes.IntegerType)
            .add("chunk", DataTypes.IntegerType)
            .add("head_dim", DataTypes.IntegerType)
            .add("keys", DataTypes.createArrayType(DataTypes.FloatType))
            .add("values", DataTypes.createArrayType(DataTypes.FloatType))
            .add("prefill_queries", DataTypes.createArrayType(DataTypes.FloatType));

    static final StructType QUERIES = new StructType()
            .add("query_id", DataTypes.LongType)
            .add("context_id", DataTypes.StringType)
            .add("layer", DataTypes.IntegerType)
            .add("head", DataTypes.IntegerType)
            .add("query", DataTypes.createArrayType(DataTypes.FloatType));

    final int contexts;
    final int layers;
    final int kvHeads;
    final int keys;
    final int dim;
    final long seed;

    TestTensors(int contexts, int layers, int kvHeads, int keys, int dim, long seed) {
        this.contexts = contexts;
        this.layers = layers;
        this.kvHeads = kvHeads;
        this.keys = keys;
        this.dim = dim;
        this.seed = seed;
        System.out.println("TestTensors seed=" + seed);
    }

    static String contextId(int c) {
        return "ctx-" + c;
    }

    private SplittableRandom random(int c, int layer, int head, int salt) {
        return new SplittableRandom(seed * 1_000_003L + ((c * 31L + layer) * 31 + head) * 7 + salt);
    }

    FloatMatrix keys(int c, int layer, int head) {
        return gaussian(random(c, layer, head, 1), keys, 1.0);
    }

    FloatMatrix values(int c, int layer, int head) {
        return gaussian(random(c, layer, head, 2), keys, 1.0);
    }

    FloatMatrix prefill(int c, int layer, int head) {
        return gaussian(random(c, layer, head, 3), keys / 2, 2.0);
    }

    FloatMatrix queries(int c, int layer, int head, int count) {
        return gaussian(random(c, layer, head, 4), count, 2.0);
    }

    private FloatMatrix gaussian(SplittableRandom r, int rows, double scale) {
        float[] data = new float[rows * dim];
        for (int i = 0; i < data.length; i++) {
            data[i] = (float) (r.nextGaussian() * scale);
        }
        return new FloatMatrix(rows, dim, data);
    }

    /** The contexts table, each head split into two chunks (token ranges) given in reverse order. */
    Dataset<Row> contextsTable(SparkSession spark) {
        List<Row> rows = new ArrayList<>();
        for (int c = 0; c < contexts; c++) {
            for (int l = 0; l < layers; l++) {
                for (int h = 0; h < kvHeads; h++) {
                    FloatMatrix k = keys(c, l, h);
                    FloatMatrix v = values(c, l, h);
                    FloatMatrix q = prefill(c, l, h);
                    int split = keys / 3;
                    int qSplit = q.rows() / 2;
                    rows.add(RowFactory.create(contextId(c), l, h, 1, dim, floats(k.rows(split, keys)),
                            floats(v.rows(split, keys)), floats(q.rows(qSplit, q.rows()))));
                    rows.add(RowFactory.create(contextId(c), l, h, 0, dim, floats(k.rows(0, split)),
                            floats(v.rows(0, split)), floats(q.rows(0, qSplit))));
                }
            }
        }
        return spark.createDataFrame(rows, CONTEXTS);
    }

    /** {@code perHead} queries for every head; query ids are dense from 0. */
    Dataset<Row> queriesTable(SparkSession spark, int perHead) {
        List<Row> rows = new ArrayList<>();
        long id = 0;
        for (int c = 0; c < contexts; c++) {
            for (int l = 0; l < layers; l++) {
                for (int h = 0; h < kvHeads; h++) {
                    FloatMatrix q = queries(c, l, h, perHead);
                    for (int i = 0; i < perHead; i++) {
                        rows.add(RowFactory.create(id++, contextId(c), l, h, floats(q.rows(i, i + 1))));
                    }
                }
            }
        }
        return spark.createDataFrame(rows, QUERIES);
    }

    static float[] floats(FloatMatrix m) {
        return java.util.Arrays.copyOf(m.data(), m.rows() * m.cols());
    }
}
