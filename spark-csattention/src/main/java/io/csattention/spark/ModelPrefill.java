package io.csattention.spark;

import io.csattention.core.FloatMatrix;
import io.csattention.model.LlamaConfig;
import io.csattention.model.LlamaModel;
import io.csattention.model.ModelFiles;
import io.csattention.model.Session;
import org.apache.spark.SparkFiles;
import org.apache.spark.api.java.function.FlatMapFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The model-level prefill stage: a contexts table of token ids becomes the tensor-level contexts table
 * ({@link ContextsSchema}) that {@link CSAttention#buildIndexes} builds, by running the model's forward pass once per
 * context on the executors.
 *
 * <pre>
 * context_id  string      the reusable context
 * tokens      array&lt;int&gt;  its token ids (BOS included when the model expects one)
 * </pre>
 *
 * The model file is read from the executor's local file system: the path itself (a shared mount), else a file of
 * that name shipped with {@code spark-submit --files} ({@link SparkFiles}); it is loaded once per executor JVM.
 */
public final class ModelPrefill {

    static final String TABLE = "model contexts";
    static final String TOKENS = "tokens";

    /**
     * The tensor-level table this stage emits: float32 little-endian binary rows of {@code head_dim} floats, the
     * prefill queries of a KV head's group stacked token-major, and the model's group size and RoPE (interleaved
     * pairs, the model's own frequencies) so the index records them.
     */
    public static final StructType TENSORS = new StructType()
            .add(ContextsSchema.CONTEXT_ID, DataTypes.StringType, false)
            .add(ContextsSchema.LAYER, DataTypes.IntegerType, false)
            .add(ContextsSchema.KV_HEAD, DataTypes.IntegerType, false)
            .add(ContextsSchema.HEAD_DIM, DataTypes.IntegerType, false)
            .add(ContextsSchema.KEYS, DataTypes.BinaryType, false)
            .add(ContextsSchema.VALUES, DataTypes.BinaryType, false)
            .add(ContextsSchema.PREFILL_QUERIES, DataTypes.BinaryType, false)
            .add(ContextsSchema.QUERY_HEADS_PER_KV_HEAD, DataTypes.IntegerType, false)
            .add(ContextsSchema.ROPE_BASE, DataTypes.DoubleType, false)
            .add(ContextsSchema.ROPE_STYLE, DataTypes.StringType, false)
            .add(ContextsSchema.ROPE_FREQUENCIES, DataTypes.createArrayType(DataTypes.FloatType, false), true);

    /** Models loaded by this JVM, by path: one load per executor, shared by its tasks. */
    private static final Map<String, LlamaModel> LOADED = new ConcurrentHashMap<>();
    /** Context prefills run by this JVM (build and generation), for tests that check "once per context". */
    private static final AtomicLong PREFILLS = new AtomicLong();

    private ModelPrefill() {
    }

    /**
     * The tensor-level contexts of {@code contexts} (columns context_id, tokens): one row per context, layer and KV
     * head with the keys, values and prefill queries of {@link Session#prefill}. Lazy: the prefill runs when an action
     * (such as {@link CSAttention#buildIndexes}) reads the result, once per context.
     */
    public static Dataset<Row> tensors(Dataset<Row> contexts, String modelPath) {
        StructType schema = contexts.schema();
        TensorColumn.typed(schema, TABLE, ContextsSchema.CONTEXT_ID, DataTypes.StringType);
        TensorColumn.typed(schema, TABLE, TOKENS, DataTypes.createArrayType(DataTypes.IntegerType, true),
                DataTypes.createArrayType(DataTypes.IntegerType, false));
        Dataset<Row> selected = contexts.select(functions.col(ContextsSchema.CONTEXT_ID), functions.col(TOKENS));
        FlatMapFunction<Row, Row> prefill = row -> heads(row.getString(0), tokens(row, 1), modelPath).iterator();
        return selected.flatMap(prefill, Encoders.row(TENSORS));
    }

    /** The model at {@code path}, loaded once per JVM. */
    static LlamaModel model(String path) {
        return LOADED.computeIfAbsent(path, p -> {
            Path file = Path.of(p);
            if (!Files.exists(file) && file.getFileName() != null) {
                Path shipped = Path.of(SparkFiles.get(file.getFileName().toString()));
                file = Files.exists(shipped) ? shipped : file;
            }
            try {
                return ModelFiles.load(file);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        });
    }

    /** Contexts this JVM has prefilled so far. */
    static long prefills() {
        return PREFILLS.get();
    }

    /** Prefills {@code tokens} into {@code session}, counted; returns the last token's logits. */
    static float[] prefill(Session session, int[] tokens) {
        PREFILLS.incrementAndGet();
        return session.prefill(tokens);
    }

    /** The token ids of column {@code column}; fails on null naming the context. */
    static int[] tokens(Row row, int column) {
        if (row.isNullAt(column)) {
            throw new IllegalArgumentException("tokens must not be null (context_id=" + row.getString(0)
                    + "); tokens=null");
        }
        List<Integer> list = row.getList(column);
        int[] out = new int[list.size()];
        for (int i = 0; i < out.length; i++) {
            Integer token = list.get(i);
            if (token == null) {
                throw new IllegalArgumentException("tokens must not hold nulls (context_id=" + row.getString(0)
                        + "); tokens[" + i + "]=null");
            }
            out[i] = token;
        }
        return out;
    }

    /** Prefills one context and returns its rows of {@link #TENSORS}. */
    static List<Row> heads(String contextId, int[] tokens, String modelPath) {
        if (tokens.length == 0) {
            throw new IllegalArgumentException("tokens must hold at least one token (context_id=" + contextId
                    + "); tokens=[]");
        }
        LlamaModel model = model(modelPath);
        Session session = model.newSession();
        prefill(session, tokens);
        LlamaConfig config = model.config();
        List<Row> rows = new ArrayList<>(config.layers() * config.kvHeads());
        float[] frequencies = model.ropeFrequencies();
        for (int l = 0; l < config.layers(); l++) {
            for (int h = 0; h < config.kvHeads(); h++) {
                rows.add(RowFactory.create(contextId, l, h, config.headSize(),
                        bytes(session.cache(l, h).keyMatrix()), bytes(session.cache(l, h).valueMatrix()),
                        bytes(session.prefillQueries(l, h)), config.groupSize(), (double) config.ropeBase(),
                        "interleaved", frequencies));
            }
        }
        return rows;
    }

    static byte[] bytes(FloatMatrix m) {
        ByteBuffer b = ByteBuffer.allocate(4 * m.rows() * m.cols()).order(ByteOrder.LITTLE_ENDIAN);
        b.asFloatBuffer().put(m.data(), 0, m.rows() * m.cols());
        return b.array();
    }
}
