package io.csattention.eval;

import io.csattention.core.Check;
import io.csattention.core.FloatMatrix;
import io.csattention.core.Rope;

import java.util.SplittableRandom;

/**
 * A seeded generator of one attention head over a long context that shows what real LLM attention shows:
 *
 * <ul>
 *   <li><b>Topic structure.</b> The context is a sequence of segments (lengths geometric, mean 256 tokens), each on
 *       one of {@code topics} topics; a key carries its segment's topic direction, a token-identity direction drawn
 *       from a Zipf-distributed vocabulary, and noise.</li>
 *   <li><b>Query/key distribution shift.</b> Keys share a large bias {@code b_K} and queries a different bias
 *       {@code b_Q}: keys and queries live in different cones, as in trained models, so the keys are a poor proxy
 *       for the queries (the premise of query-centric indexing).</li>
 *   <li><b>Attention sinks.</b> The first four keys carry a strong component along a direction every query leans
 *       towards.</li>
 *   <li><b>Needles.</b> {@code needles} rare tokens with their own key directions sit at random positions; a share of
 *       the decode queries (25%) asks for one of them; in the prefill only about half of the 16 tokens right after a
 *       needle refer back to it, so needle queries are rare in the prefill (under 0.1% of it at 128K).</li>
 *   <li><b>RoPE.</b> Keys and queries are rotated to their positions (key i at i, prefill query i at i, decode query
 *       j at N + j) with base {@code ropeBase} and {@code ropeStyle} pairing, so content in fast-rotating pairs becomes
 *       position-dependent. As in trained models, content directions live mostly in the slowest pairs (trained
 *       models use the lowest RoPE frequencies as their semantic channels), so a content match survives distance.</li>
 * </ul>
 *
 * <p>Prefill queries ask mostly about their own segment's topic and sometimes about an earlier one; decode queries ask
 * about topics anywhere in the context, or about a needle. The query scale is calibrated so that attention is as
 * concentrated as in trained models' long-context heads: the exact top 5% of the keys (the oracle at 95% sparsity)
 * holds about 0.95 or more of the softmax mass at 8K-32K tokens, without being one-hot.
 */
public final class SyntheticContext {

    /** The generated head: keys, values, prefill queries and decode queries, all post-RoPE. */
    public record Head(FloatMatrix keys, FloatMatrix values, FloatMatrix prefillQueries, FloatMatrix queries,
                       long[] prefillQueryPositions, long[] queryPositions) {
    }

    /** What to generate; see the class comment for the model behind each knob. */
    public record Spec(int tokens, int headDim, int queries, long seed, double ropeBase, Rope.Style ropeStyle,
                       int topics, int needles) {
        public Spec {
            Check.positive(tokens, "tokens");
            Check.that(headDim >= 4 && headDim % 2 == 0, "head-dim must be even and >= 4", "head-dim", headDim);
            Check.positive(queries, "queries");
            Check.positive(topics, "topics");
            Check.nonNegative(needles, "needles");
        }

        public static Spec of(int tokens, int headDim, int queries, long seed) {
            return new Spec(tokens, headDim, queries, seed, 500_000, Rope.Style.HALF, 64, 16);
        }
    }

    private static final int SINKS = 4;
    private static final int VOCABULARY = 4096;
    private static final double MEAN_SEGMENT = 256;
    private static final double NEEDLE_QUERY_SHARE = 0.25;
    /** Sets how peaked attention is: with it the oracle top 5% holds most of the softmax mass. */
    private static final double QUERY_SCALE = 9.0;
    /** Tokens right after a needle that may refer back to it (local coreference). */
    private static final int NEEDLE_ECHO = 16;

    private SyntheticContext() {
    }

    public static Head generate(Spec spec) {
        int n = spec.tokens();
        int d = spec.headDim();
        SplittableRandom random = new SplittableRandom(spec.seed());
        double unit = Math.sqrt(d);
        float[][] topics = directions(random, spec.topics(), d);
        float[][] vocabulary = directions(random, VOCABULARY, d);
        float[][] needleDirections = directions(random, Math.max(1, spec.needles()), d);
        float[] keyBias = direction(random, d);
        float[] queryBias = direction(random, d);
        float[] sinkDirection = direction(random, d);

        int[] topicOf = new int[n];
        int position = 0;
        while (position < n) {
            int length = 1 + (int) (-MEAN_SEGMENT * Math.log(1 - random.nextDouble()));
            int topic = random.nextInt(spec.topics());
            for (int i = position; i < Math.min(n, position + length); i++) {
                topicOf[i] = topic;
            }
            position += length;
        }
        int[] needlePositions = new int[spec.needles()];
        for (int j = 0; j < spec.needles(); j++) {
            needlePositions[j] = SINKS + random.nextInt(Math.max(1, n - SINKS));
        }

        float[] keys = new float[n * d];
        float[] values = new float[n * d];
        for (int i = 0; i < n; i++) {
            int token = zipf(random, VOCABULARY);
            for (int c = 0; c < d; c++) {
                double k = 1.5 * keyBias[c] + 1.0 * topics[topicOf[i]][c] + 0.6 * vocabulary[token][c]
                        + 0.5 * gaussian(random) / unit;
                if (i < SINKS) {
                    k += 2.5 * sinkDirection[c];
                }
                keys[i * d + c] = (float) (k * unit);
                values[i * d + c] = (float) (0.5 * topics[topicOf[i]][c] + vocabulary[token][c] + gaussian(random)
                        / unit);
            }
        }
        for (int j = 0; j < spec.needles(); j++) {
            int i = needlePositions[j];
            for (int c = 0; c < d; c++) {
                keys[i * d + c] = (float) ((1.5 * keyBias[c] + 2.0 * needleDirections[j][c]) * unit);
                values[i * d + c] = (float) (2.0 * needleDirections[j][c]);
            }
        }

        float[] prefill = new float[n * d];
        long[] prefillPositions = new long[n];
        int[] recentNeedle = new int[n];
        java.util.Arrays.fill(recentNeedle, -1);
        for (int j = 0; j < spec.needles(); j++) {
            for (int i = needlePositions[j] + 1; i < Math.min(n, needlePositions[j] + 1 + NEEDLE_ECHO); i++) {
                recentNeedle[i] = j;
            }
        }
        for (int i = 0; i < n; i++) {
            int topic = random.nextDouble() < 0.7 ? topicOf[i] : topicOf[random.nextInt(i + 1)];
            float[] needle = recentNeedle[i] >= 0 && random.nextDouble() < 0.5 ? needleDirections[recentNeedle[i]]
                    : null;
            query(random, prefill, i * d, d, unit, queryBias, sinkDirection, topics[topic], needle);
            prefillPositions[i] = i;
        }
        int m = spec.queries();
        float[] decode = new float[m * d];
        long[] decodePositions = new long[m];
        for (int j = 0; j < m; j++) {
            boolean needle = spec.needles() > 0 && random.nextDouble() < NEEDLE_QUERY_SHARE;
            float[] needleDirection = needle ? needleDirections[random.nextInt(spec.needles())] : null;
            query(random, decode, j * d, d, unit, queryBias, sinkDirection, topics[topicOf[random.nextInt(n)]],
                    needleDirection);
            decodePositions[j] = n + j;
        }

        for (int i = 0; i < n; i++) {
            Rope.rotate(keys, i * d, d, i, spec.ropeBase(), spec.ropeStyle());
            Rope.rotate(prefill, i * d, d, i, spec.ropeBase(), spec.ropeStyle());
        }
        for (int j = 0; j < m; j++) {
            Rope.rotate(decode, j * d, d, decodePositions[j], spec.ropeBase(), spec.ropeStyle());
        }
        return new Head(new FloatMatrix(n, d, keys), new FloatMatrix(n, d, values), new FloatMatrix(n, d, prefill),
                new FloatMatrix(m, d, decode), prefillPositions, decodePositions);
    }

    private static void query(SplittableRandom random, float[] out, int off, int d, double unit, float[] queryBias,
                              float[] sinkDirection, float[] topic, float[] needle) {
        for (int c = 0; c < d; c++) {
            double q = 1.0 * queryBias[c] + 0.8 * sinkDirection[c] + 1.6 * topic[c] + 0.7 * gaussian(random) / unit;
            if (needle != null) {
                q += 2.2 * needle[c] - 0.8 * topic[c];
            }
            out[off + c] = (float) (q * QUERY_SCALE);
        }
    }

    private static float[][] directions(SplittableRandom random, int count, int d) {
        float[][] out = new float[count][];
        for (int i = 0; i < count; i++) {
            out[i] = direction(random, d);
        }
        return out;
    }

    /**
     * A random unit vector with most of its energy in the slowly rotating RoPE pairs, as the content (semantic)
     * features of trained models are: full amplitude in the slowest quarter of the pairs, 0.3 in the next quarter and
     * 0.1 in the fastest half.
     */
    private static float[] direction(SplittableRandom random, int d) {
        double[] v = new double[d];
        double norm = 0;
        for (int c = 0; c < d; c++) {
            int pair = c % (d / 2);
            double amplitude = pair >= 3 * d / 8 ? 1.0 : pair >= d / 4 ? 0.3 : 0.1;
            v[c] = gaussian(random) * amplitude;
            norm += v[c] * v[c];
        }
        norm = Math.sqrt(norm);
        float[] out = new float[d];
        for (int c = 0; c < d; c++) {
            out[c] = (float) (v[c] / norm);
        }
        return out;
    }

    private static double gaussian(SplittableRandom random) {
        double u = 1 - random.nextDouble();
        double v = random.nextDouble();
        return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    }

    /** A Zipf(1)-distributed token id in [0, size), by inversion of the harmonic CDF approximation. */
    private static int zipf(SplittableRandom random, int size) {
        double h = Math.log(size) + 0.5772156649;
        double target = random.nextDouble() * h;
        int token = (int) Math.floor(Math.exp(target - 0.5772156649));
        return Math.min(size - 1, Math.max(0, token - 1));
    }
}
