package io.csattention.spark;

import io.csattention.core.CSAttentionSettings;
import io.csattention.core.CentroidDistance;
import io.csattention.core.MissingScore;
import io.csattention.kernel.Kernels;
import io.csattention.kernel.ScalarKernels;
import io.csattention.kernel.VectorKernels;
import org.apache.spark.sql.SparkSession;

import java.io.Serializable;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * Every option of the Spark jobs, parsed once on the driver into an immutable, serializable value that the
 * executors receive. Keys are case-insensitive; the same keys prefixed with {@value #CONF_PREFIX} in the Spark
 * configuration are defaults that an option given to a job overrides. {@code conf/csattention-defaults.conf}
 * documents every key.
 *
 * @param settings           the core's build and decode settings
 * @param kernels            which CPU kernels the executors use (SIMD or scalar)
 * @param cacheBudgetBytes   bytes of loaded indexes (tables + KV) each executor keeps, least recently used evicted
 * @param broadcastThreshold requested indexes whose files total at most this many bytes are broadcast whole;
 *                           above it only their metadata and centroid tables are, and executors read the rest
 * @param blockSize          queries decoded per block
 * @param queryHeadsPerKvHead GQA group size (query heads per KV head), 0 when not given: a build records it for
 *                           each head (1 when not given), a decode maps query heads to KV heads with the recorded one
 *                           and fails when a given one disagrees
 * @param ropeBase           tensor-level builds: the RoPE base the heads' keys and prefill queries carry (0: none)
 * @param ropeStyle          tensor-level builds: how RoPE pairs the dimensions
 * @param withSelected       add the selected key ids to decode output
 * @param routeErrors        bad query rows get an {@code error} column instead of failing the job
 * @param partitions         partitions of the index build (0: Spark's default shuffle partitions)
 * @param binaryFloat16      binary tensor columns hold float16 instead of float32
 * @param rowsPerTask        decode planned by head: the most query rows a decode task holds
 * @param decodeByHead       decode plans tasks by head ({@code decodePlan=byHead}) instead of decoding each input
 *                           partition as it is ({@code asIs})
 * @param preserveOrder      a decode planned by head gives its rows back in the input's order and partitioning
 * @param device             where executors decode and prefill model contexts ({@code ModelPrefill}): {@code cpu}
 *                           (the default), {@code gpu} (the GPU the task was
 *                           assigned; a task without a usable one fails) or {@code auto} (that GPU when usable, else
 *                           the CPU with one logged line); see {@code ExecutorDevice}. The default is {@code cpu}
 *                           because the GPU selection may differ from the CPU's at near-ties of its float sums, so
 *                           under {@code auto} a retried task that lands on an executor without a GPU could write
 *                           other rows; only a user who asks for the GPU gets that
 */
public record CSAttentionOptions(CSAttentionSettings settings, KernelChoice kernelChoice, long cacheBudgetBytes,
                                 long broadcastThreshold, int blockSize, int queryHeadsPerKvHead,
                                 double ropeBase, io.csattention.core.Rope.Style ropeStyle,
                                 boolean withSelected, boolean routeErrors, int partitions, boolean binaryFloat16,
                                 int rowsPerTask, boolean decodeByHead, boolean preserveOrder,
                                 io.csattention.device.Backends.Mode device)
        implements Serializable {

    public static final String CONF_PREFIX = "spark.csattention.";

    public static final String SPARSITY = "sparsity";
    public static final String SUBSPACES = "subspaces";
    public static final String CENTROIDS = "centroids";
    public static final String LIST_FRACTION = "listFraction";
    public static final String SINK = "sink";
    public static final String WINDOW = "window";
    public static final String SEED = "seed";
    public static final String KMEANS_ITERATIONS = "kmeansIterations";
    public static final String KMEANS_SAMPLES = "kmeansSamples";
    public static final String DISTANCE = "distance";
    public static final String MISSING_SCORE = "missingScore";
    public static final String RESCORE_FACTOR = "rescoreFactor";
    public static final String KERNELS = "kernels";
    public static final String CACHE_BUDGET = "cacheBudget";
    public static final String BROADCAST_THRESHOLD = "broadcastThreshold";
    public static final String BLOCK_SIZE = "blockSize";
    public static final String QUERY_HEADS_PER_KV_HEAD = "queryHeadsPerKvHead";
    public static final String ROPE_BASE = "ropeBase";
    public static final String ROPE_STYLE = "ropeStyle";
    public static final String WITH_SELECTED = "withSelected";
    public static final String ON_ERROR = "onError";
    public static final String PARTITIONS = "partitions";
    public static final String BINARY_TYPE = "binaryType";
    public static final String ROWS_PER_TASK = "rowsPerTask";
    public static final String DECODE_PLAN = "decodePlan";
    public static final String PRESERVE_ORDER = "preserveOrder";
    /** The same key as {@link io.csattention.device.Backends#SETTING} once the Spark prefix is taken off. */
    public static final String DEVICE = "device";

    /** Every key this class reads; any other key given to a job is an error (a typo must not be ignored). */
    public static final Set<String> KEYS = Set.of(SPARSITY, SUBSPACES, CENTROIDS, LIST_FRACTION, SINK, WINDOW, SEED,
            KMEANS_ITERATIONS, KMEANS_SAMPLES, DISTANCE, MISSING_SCORE, RESCORE_FACTOR, KERNELS, CACHE_BUDGET,
            BROADCAST_THRESHOLD, BLOCK_SIZE, QUERY_HEADS_PER_KV_HEAD, ROPE_BASE, ROPE_STYLE, WITH_SELECTED, ON_ERROR,
            PARTITIONS, BINARY_TYPE, ROWS_PER_TASK, DECODE_PLAN, PRESERVE_ORDER, DEVICE);

    /** Settings of the core (their names in its messages) and the keys users type for them here. */
    private static final Map<String, String> CORE_NAMES = Map.ofEntries(Map.entry("sparsity", SPARSITY),
            Map.entry("subspaces", SUBSPACES), Map.entry("centroids", CENTROIDS),
            Map.entry("list-fraction", LIST_FRACTION), Map.entry("sink", SINK), Map.entry("window", WINDOW),
            Map.entry("kmeans-iterations", KMEANS_ITERATIONS), Map.entry("kmeans-samples", KMEANS_SAMPLES),
            Map.entry("rescore-factor", RESCORE_FACTOR));

    /** Keys a DataSource or job passes that are not settings (the path, Spark's own write options). */
    private static final Set<String> PASS_THROUGH = Set.of("path", "paths", "mode");

    public static final long DEFAULT_CACHE_BUDGET = 1L << 30;
    public static final long DEFAULT_BROADCAST_THRESHOLD = 64L << 20;
    public static final int DEFAULT_BLOCK_SIZE = 256;
    public static final int DEFAULT_ROWS_PER_TASK = 50_000;

    /** CPU kernels the executors use (the CPU-or-GPU choice is the device, not this option). */
    public enum KernelChoice {
        /** The fastest CPU kernels this JVM has (SIMD when the Vector API module is present). */
        AUTO,
        /** The SIMD kernels, failing when the Vector API module is absent. */
        SIMD,
        /** The scalar reference kernels. */
        SCALAR;

        VectorKernels kernels() {
            return switch (this) {
                case AUTO -> Kernels.preferred();
                case SCALAR -> ScalarKernels.INSTANCE;
                case SIMD -> Kernels.simd().orElseThrow(() -> new IllegalArgumentException(
                        "kernels simd needs the JVM flag --add-modules jdk.incubator.vector; kernels=simd"));
            };
        }
    }

    public CSAttentionOptions {
        java.util.Objects.requireNonNull(settings, "settings");
        java.util.Objects.requireNonNull(kernelChoice, "kernelChoice");
        java.util.Objects.requireNonNull(device, "device");
    }

    /** The defaults, equal to {@code parse(Map.of())}. */
    public static CSAttentionOptions defaults() {
        return parse(Map.of());
    }

    /** Options of the active session's configuration ({@value #CONF_PREFIX}*) overridden by {@code options}. */
    public static CSAttentionOptions from(SparkSession spark, Map<String, String> options) {
        Map<String, String> merged = new LinkedHashMap<>();
        scala.collection.Iterator<scala.Tuple2<String, String>> all = spark.conf().getAll().iterator();
        while (all.hasNext()) {
            scala.Tuple2<String, String> entry = all.next();
            if (entry._1().startsWith(CONF_PREFIX)) {
                merged.put(entry._1().substring(CONF_PREFIX.length()), entry._2());
            }
        }
        merged.putAll(options);
        return parse(merged);
    }

    /** Parses options; an unknown key or a bad value fails with one line naming the key and the value. */
    public static CSAttentionOptions parse(Map<String, String> options) {
        Map<String, String> o = new TreeMap<>(String.CASE_INSENSITIVE_ORDER);
        for (Map.Entry<String, String> e : options.entrySet()) {
            String key = e.getKey();
            if (!PASS_THROUGH.contains(key.toLowerCase(Locale.ROOT))
                    && KEYS.stream().noneMatch(k -> k.equalsIgnoreCase(key))) {
                throw new IllegalArgumentException("option must be one of " + new java.util.TreeSet<>(KEYS)
                        + "; " + key + "=" + e.getValue());
            }
            o.put(key, e.getValue().trim());
        }
        CSAttentionSettings settings;
        try {
            CSAttentionSettings d = CSAttentionSettings.defaults();
            settings = d
                    .withSparsity(decimal(o, SPARSITY, d.sparsity()))
                    .withSubspaces(integer(o, SUBSPACES, d.subspaces()))
                    .withCentroids(integer(o, CENTROIDS, d.centroids()))
                    .withListFraction(decimal(o, LIST_FRACTION, d.listFraction()))
                    .withSink(integer(o, SINK, d.sink()))
                    .withWindow(integer(o, WINDOW, d.window()))
                    .withSeed(longValue(o, SEED, d.seed()))
                    .withKmeansIterations(integer(o, KMEANS_ITERATIONS, d.kmeansIterations()))
                    .withKmeansSamples(integer(o, KMEANS_SAMPLES, d.kmeansSamples()))
                    .withDistance(choice(o, DISTANCE, CentroidDistance.class, d.distance()))
                    .withMissingScore(choice(o, MISSING_SCORE, MissingScore.class, d.missingScore()))
                    .withRescoreFactor(decimal(o, RESCORE_FACTOR, d.rescoreFactor()));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(inUserNames(e.getMessage()));
        }
        String onError = o.getOrDefault(ON_ERROR, "fail").toLowerCase(Locale.ROOT);
        if (!onError.equals("fail") && !onError.equals("route")) {
            throw new IllegalArgumentException("onError must be fail or route; onError=" + o.get(ON_ERROR));
        }
        long cacheBudget = bytes(o, CACHE_BUDGET, DEFAULT_CACHE_BUDGET);
        positive(cacheBudget, CACHE_BUDGET, o);
        long broadcast = bytes(o, BROADCAST_THRESHOLD, DEFAULT_BROADCAST_THRESHOLD);
        int blockSize = integer(o, BLOCK_SIZE, DEFAULT_BLOCK_SIZE);
        positive(blockSize, BLOCK_SIZE, o);
        int group = integer(o, QUERY_HEADS_PER_KV_HEAD, 0);
        if (group < 0) {
            throw new IllegalArgumentException(QUERY_HEADS_PER_KV_HEAD + " must be > 0 (or 0 for the recorded one); "
                    + QUERY_HEADS_PER_KV_HEAD + "=" + o.get(QUERY_HEADS_PER_KV_HEAD));
        }
        double ropeBase = decimal(o, ROPE_BASE, 0);
        if (ropeBase != 0 && !(ropeBase > 1)) {
            throw new IllegalArgumentException(ROPE_BASE + " must be > 1 (or 0 for no RoPE); " + ROPE_BASE + "="
                    + o.get(ROPE_BASE));
        }
        io.csattention.core.Rope.Style ropeStyle = choice(o, ROPE_STYLE, io.csattention.core.Rope.Style.class,
                io.csattention.core.Rope.Style.INTERLEAVED);
        int partitions = integer(o, PARTITIONS, 0);
        if (partitions < 0) {
            throw new IllegalArgumentException("partitions must be >= 0; partitions=" + partitions);
        }
        String binaryType = o.getOrDefault(BINARY_TYPE, "float32").toLowerCase(Locale.ROOT);
        if (!binaryType.equals("float32") && !binaryType.equals("float16")) {
            throw new IllegalArgumentException("binaryType must be float32 or float16; binaryType="
                    + o.get(BINARY_TYPE));
        }
        int rowsPerTask = integer(o, ROWS_PER_TASK, DEFAULT_ROWS_PER_TASK);
        positive(rowsPerTask, ROWS_PER_TASK, o);
        String decodePlan = o.getOrDefault(DECODE_PLAN, "byHead").toLowerCase(Locale.ROOT);
        if (!decodePlan.equals("byhead") && !decodePlan.equals("asis")) {
            throw new IllegalArgumentException("decodePlan must be byHead or asIs; decodePlan=" + o.get(DECODE_PLAN));
        }
        return new CSAttentionOptions(settings, choice(o, KERNELS, KernelChoice.class, KernelChoice.AUTO), cacheBudget,
                broadcast, blockSize, group, ropeBase, ropeStyle, bool(o, WITH_SELECTED, false), onError.equals("route"), partitions,
                binaryType.equals("float16"), rowsPerTask, decodePlan.equals("byhead"), bool(o, PRESERVE_ORDER, true),
                io.csattention.device.Backends.Mode.parse(o.getOrDefault(DEVICE, "cpu")));
    }

    /** The kernels of {@link #kernelChoice}. */
    public VectorKernels kernels() {
        return kernelChoice.kernels();
    }

    /** The options as key/value text, for manifests and logs. */
    public Map<String, String> describe() {
        Map<String, String> out = new LinkedHashMap<>();
        out.put(SPARSITY, Double.toString(settings.sparsity()));
        out.put(SUBSPACES, Integer.toString(settings.subspaces()));
        out.put(CENTROIDS, Integer.toString(settings.centroids()));
        out.put(LIST_FRACTION, Double.toString(settings.listFraction()));
        out.put(SINK, Integer.toString(settings.sink()));
        out.put(WINDOW, Integer.toString(settings.window()));
        out.put(SEED, Long.toString(settings.seed()));
        out.put(KMEANS_ITERATIONS, Integer.toString(settings.kmeansIterations()));
        out.put(KMEANS_SAMPLES, Integer.toString(settings.kmeansSamples()));
        out.put(DISTANCE, settings.distance().name().toLowerCase(Locale.ROOT));
        out.put(MISSING_SCORE, settings.missingScore().name().toLowerCase(Locale.ROOT));
        out.put(RESCORE_FACTOR, Double.toString(settings.rescoreFactor()));
        out.put(KERNELS, kernelChoice.name().toLowerCase(Locale.ROOT));
        if (queryHeadsPerKvHead > 0) {
            out.put(QUERY_HEADS_PER_KV_HEAD, Integer.toString(queryHeadsPerKvHead));
        }
        if (ropeBase != 0) {
            out.put(ROPE_BASE, Double.toString(ropeBase));
            out.put(ROPE_STYLE, ropeStyle.name().toLowerCase(Locale.ROOT));
        }
        return out;
    }

    /** A core settings message with the core's names ({@code list-fraction}) replaced by the keys users type. */
    private static String inUserNames(String message) {
        String out = message;
        for (Map.Entry<String, String> e : CORE_NAMES.entrySet()) {
            out = out.replaceAll("(?<![\\w-])" + java.util.regex.Pattern.quote(e.getKey()) + "(?![\\w-])",
                    java.util.regex.Matcher.quoteReplacement(e.getValue()));
        }
        return out;
    }

    private static void positive(long value, String key, Map<String, String> o) {
        if (value <= 0) {
            throw new IllegalArgumentException(key + " must be > 0; " + key + "=" + o.get(key));
        }
    }

    private static double decimal(Map<String, String> o, String key, double fallback) {
        String v = o.get(key);
        if (v == null) {
            return fallback;
        }
        try {
            return Double.parseDouble(v);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(key + " must be a number; " + key + "=" + v);
        }
    }

    private static int integer(Map<String, String> o, String key, int fallback) {
        String v = o.get(key);
        if (v == null) {
            return fallback;
        }
        try {
            return Integer.parseInt(v);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(key + " must be an integer; " + key + "=" + v);
        }
    }

    private static long longValue(Map<String, String> o, String key, long fallback) {
        String v = o.get(key);
        if (v == null) {
            return fallback;
        }
        try {
            return Long.parseLong(v);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(key + " must be an integer; " + key + "=" + v);
        }
    }

    private static boolean bool(Map<String, String> o, String key, boolean fallback) {
        String v = o.get(key);
        if (v == null) {
            return fallback;
        }
        if (v.equalsIgnoreCase("true") || v.equalsIgnoreCase("false")) {
            return Boolean.parseBoolean(v);
        }
        throw new IllegalArgumentException(key + " must be true or false; " + key + "=" + v);
    }

    /** Sizes such as {@code 1048576}, {@code 512k}, {@code 64m}, {@code 2g} (powers of 1024). */
    static long bytes(Map<String, String> o, String key, long fallback) {
        String v = o.get(key);
        if (v == null) {
            return fallback;
        }
        String s = v.toLowerCase(Locale.ROOT).replaceAll("b$", "");
        long unit = 1;
        if (!s.isEmpty() && "kmgt".indexOf(s.charAt(s.length() - 1)) >= 0) {
            unit = 1L << (10 * ("kmgt".indexOf(s.charAt(s.length() - 1)) + 1));
            s = s.substring(0, s.length() - 1);
        }
        try {
            long n = Long.parseLong(s);
            if (n < 0) {
                throw new NumberFormatException();
            }
            return Math.multiplyExact(n, unit);
        } catch (NumberFormatException | ArithmeticException e) {
            throw new IllegalArgumentException(key + " must be a size in bytes such as 512m or 2g; " + key + "=" + v);
        }
    }

    private static <E extends Enum<E>> E choice(Map<String, String> o, String key, Class<E> type, E fallback) {
        String v = o.get(key);
        if (v == null) {
            return fallback;
        }
        String normalized = v.toUpperCase(Locale.ROOT).replace('-', '_');
        for (E e : type.getEnumConstants()) {
            if (e.name().equals(normalized)) {
                return e;
            }
        }
        java.util.List<String> names = java.util.Arrays.stream(type.getEnumConstants())
                .map(e -> e.name().toLowerCase(Locale.ROOT).replace('_', '-')).toList();
        throw new IllegalArgumentException(key + " must be one of " + String.join(", ", names) + "; " + key + "=" + v);
    }
}
