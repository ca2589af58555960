package io.csattention.spark;

import io.csattention.core.FloatMatrix;
import io.csattention.device.Backends;
import io.csattention.model.DevicePrefill;
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
 * The model-level prefill stage: a contexts table of text or token ids becomes the tensor-level contexts table
 * ({@link ContextsSchema}) that {@link CSAttention#buildIndexes} builds, by running the model's forward pass once per
 * context on the executors.
 *
 * <pre>
 * context_id  string      the reusable context
 * text        string      its text, tokenized on the executors by the model's own tokenizer (BOS first), or
 * tokens      array&lt;int&gt;  its token ids (BOS included when the model expects one); exactly one of the two
 * </pre>
 *
 * The model file is read from the executor's local file system: the path itself (a shared mount), else a file of
 * that name shipped with {@code spark-submit --files} ({@link SparkFiles}); it is loaded once per executor JVM. A GGUF
 * file carries its tokenizer; a llama2.c checkpoint takes llama2.c's {@code tokenizer.bin} as option
 * {@code tokenizer} (found the same way).
 *
 * <p>Each context's prefill runs where option {@code device} says ({@link DevicePrefill}): the CPU (the default), or
 * the GPU the task was assigned ({@link ExecutorDevice#taskOrdinal}, as decode picks it), with {@code auto} falling
 * back to the CPU with one logged line per executor. The rows go on from the executor's host memory either way.
 */
public final class ModelPrefill {

    static final String TABLE = "model contexts";
    static final String TOKENS = "tokens";
    static final String TEXT = "text";
    /** Option: llama2.c's tokenizer.bin for a llama2.c checkpoint (GGUF files carry their own vocabulary). */
    public static final String TOKENIZER = "tokenizer";
    /** The type token ids are read as (nullable elements, checked row by row). */
    static final org.apache.spark.sql.types.ArrayType IDS = DataTypes.createArrayType(DataTypes.IntegerType, true);

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

    /** Models loaded by this JVM, by path (and tokenizer path): one load per executor, shared by its tasks. */
    private static final Map<String, LlamaModel> LOADED = new ConcurrentHashMap<>();
    /** Context prefills run by this JVM (build and generation), for tests that check "once per context". */
    private static final AtomicLong PREFILLS = new AtomicLong();

    private ModelPrefill() {
    }

    /** {@link #tensors(Dataset, String, String)} of a model that carries its tokenizer (or of a tokens table). */
    public static Dataset<Row> tensors(Dataset<Row> contexts, String modelPath) {
        return tensors(contexts, modelPath, null);
    }

    /** {@link #tensors(Dataset, String, String, Backends.Mode)} prefilled on the CPU. */
    public static Dataset<Row> tensors(Dataset<Row> contexts, String modelPath, String tokenizerPath) {
        return tensors(contexts, modelPath, tokenizerPath, Backends.Mode.CPU);
    }

    /**
     * The tensor-level contexts of {@code contexts} (columns context_id and text or tokens): one row per context,
     * layer and KV head with the keys, values and prefill queries of {@link Session#prefill}. Lazy: the tokenizer and
     * the prefill run when an action (such as {@link CSAttention#buildIndexes}) reads the result, once per context.
     *
     * @param tokenizerPath llama2.c's tokenizer.bin for a llama2.c checkpoint, or null
     * @param device        where the prefills run ({@link DevicePrefill})
     */
    public static Dataset<Row> tensors(Dataset<Row> contexts, String modelPath, String tokenizerPath,
                                       Backends.Mode device) {
        boolean text = isText(contexts.schema(), TABLE);
        TensorColumn.typed(contexts.schema(), TABLE, ContextsSchema.CONTEXT_ID, DataTypes.StringType);
        ModelSource source = new ModelSource(modelPath, tokenizerPath);
        FlatMapFunction<Row, Row> prefill = row -> {
            LlamaModel model = source.load();
            return heads(row.getString(0), contextTokens(row, text, model, source), model, device).iterator();
        };
        return inputs(contexts, ContextsSchema.CONTEXT_ID, text).flatMap(prefill, Encoders.row(TENSORS));
    }

    /**
     * Whether a model-level table holds text (a string column {@code text}) or token ids (an array&lt;int&gt; column
     * {@code tokens}); one of the two exactly, checked on the driver.
     */
    static boolean isText(StructType schema, String table) {
        boolean text = java.util.Arrays.stream(schema.fieldNames()).anyMatch(TEXT::equalsIgnoreCase);
        boolean tokens = java.util.Arrays.stream(schema.fieldNames()).anyMatch(TOKENS::equalsIgnoreCase);
        if (text == tokens) {
            throw new IllegalArgumentException(table + " table must have exactly one of the columns text and tokens; "
                    + "columns=" + java.util.Arrays.toString(schema.fieldNames()));
        }
        if (text) {
            TensorColumn.typed(schema, table, TEXT, DataTypes.StringType);
        } else {
            TensorColumn.typed(schema, table, TOKENS, DataTypes.createArrayType(DataTypes.IntegerType, true),
                    DataTypes.createArrayType(DataTypes.IntegerType, false));
        }
        return text;
    }

    /** {@code table} as (id, tokens array&lt;int&gt;, text string), the column it lacks null. */
    static Dataset<Row> inputs(Dataset<Row> table, String id, boolean text) {
        return table.select(functions.col(id), text ? functions.lit(null).cast(IDS).as(TOKENS)
                        : functions.col(TOKENS).cast(IDS).as(TOKENS),
                text ? functions.col(TEXT) : functions.lit(null).cast(DataTypes.StringType).as(TEXT));
    }

    /** The model file and, for a llama2.c checkpoint, its tokenizer file: what an executor loads, once per JVM. */
    record ModelSource(String model, String tokenizer) implements java.io.Serializable {

        LlamaModel load() {
            return ModelPrefill.model(model, tokenizer);
        }

        /** The tokenizer of {@code loaded}; a one-line error when the model has none. */
        io.csattention.model.Tokenizer tokenizerOf(LlamaModel loaded) {
            return loaded.tokenizer().orElseThrow(() -> new IllegalArgumentException("text needs the model's "
                    + "tokenizer (a GGUF vocabulary, or option tokenizer with a llama2.c checkpoint's tokenizer.bin); "
                    + "model=" + model));
        }
    }

    /**
     * The token ids of a context row (context_id, tokens, text): its tokens, or its text tokenized (BOS first). Fails
     * naming the context on null or empty input and on more tokens than the model's context length.
     */
    static int[] contextTokens(Row row, boolean text, LlamaModel model, ModelSource source) {
        String contextId = row.getString(0);
        int[] tokens;
        if (text) {
            if (row.isNullAt(2)) {
                throw new IllegalArgumentException("text must not be null (context_id=" + contextId + "); text=null");
            }
            String value = row.getString(2);
            if (value.isEmpty()) {
                throw new IllegalArgumentException("text must hold at least one character (context_id=" + contextId
                        + "); text=''");
            }
            tokens = source.tokenizerOf(model).encode(value);
        } else {
            tokens = tokens(row, 1, "context_id=" + contextId);
            if (tokens.length == 0) {
                throw new IllegalArgumentException("tokens must hold at least one token (context_id=" + contextId
                        + "); tokens=[]");
            }
            for (int token : tokens) {
                if (token < 0 || token >= model.config().vocabSize()) {
                    throw new IllegalArgumentException("token ids must be in [0, " + model.config().vocabSize()
                            + ") (context_id=" + contextId + "); token=" + token);
                }
            }
        }
        if (tokens.length > model.config().contextLength()) {
            throw new IllegalArgumentException((text ? "text" : "tokens") + " must fit the model's context length of "
                    + model.config().contextLength() + " tokens (context_id=" + contextId + "); tokens="
                    + tokens.length);
        }
        return tokens;
    }

    /** The model at {@code path} with the llama2.c tokenizer at {@code tokenizer} (null: none), once per JVM. */
    static LlamaModel model(String path, String tokenizer) {
        return LOADED.computeIfAbsent(tokenizer == null ? path : path + "\n" + tokenizer, key -> {
            try {
                LlamaModel model = ModelFiles.load(local(path));
                return tokenizer == null ? model : model.withTokenizer(
                        io.csattention.model.Tokenizer.readLlama2c(local(tokenizer), model.config().vocabSize()));
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        });
    }

    /** {@code path} on this machine, else the file of that name shipped with spark-submit --files. */
    private static Path local(String path) {
        Path file = Path.of(path);
        if (!Files.exists(file) && file.getFileName() != null) {
            Path shipped = Path.of(SparkFiles.get(file.getFileName().toString()));
            file = Files.exists(shipped) ? shipped : file;
        }
        return file;
    }

    /** Contexts this JVM has prefilled so far. */
    static long prefills() {
        return PREFILLS.get();
    }

    /**
     * Prefills {@code tokens} into {@code session} on {@code device} (a GPU: the task's), counted; returns the last
     * token's logits.
     */
    static float[] prefill(Session session, int[] tokens, Backends.Mode device) {
        PREFILLS.incrementAndGet();
        return DevicePrefill.prefill(session, tokens, device,
                device == Backends.Mode.CPU ? 0 : ExecutorDevice.taskOrdinal());
    }

    /** The token ids of column {@code column}; fails on null naming {@code owner} (e.g. {@code context_id=a}). */
    static int[] tokens(Row row, int column, String owner) {
        if (row.isNullAt(column)) {
            throw new IllegalArgumentException("tokens must not be null (" + owner + "); tokens=null");
        }
        List<Integer> list = row.getList(column);
        int[] out = new int[list.size()];
        for (int i = 0; i < out.length; i++) {
            Integer token = list.get(i);
            if (token == null) {
                throw new IllegalArgumentException("tokens must not hold nulls (" + owner + "); tokens[" + i
                        + "]=null");
            }
            out[i] = token;
        }
        return out;
    }

    /** Prefills one context and returns its rows of {@link #TENSORS}. */
    static List<Row> heads(String contextId, int[] tokens, LlamaModel model, Backends.Mode device) {
        Session session = model.newSession();
        prefill(session, tokens, device);
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
