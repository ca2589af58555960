package io.csattention.jobs;

import io.csattention.core.FloatMatrix;
import io.csattention.format.Npy;

import java.io.IOException;
import java.nio.file.Path;
import java.util.SplittableRandom;

/**
 * The tensors of one benchmarked head: keys and values [N, d], prefill queries [N_p, d] and decode queries [M, d].
 * {@link #synthetic} is the one place that says which generator the benchmark uses.
 */
record BenchData(String source, FloatMatrix keys, FloatMatrix values, FloatMatrix prefillQueries,
                 FloatMatrix queries) {

    /** Topics of the planted-structure generator; each holds about 1/16 of the keys, more than a 95% budget. */
    private static final int TOPICS = 16;
    private static final int SEGMENT = 256;
    /** Length of a query's topic component: q.k/sqrt(d) of about 7 on its topic's keys, so attention is peaked. */
    private static final double QUERY_SCALE = 80;

    static BenchData fromNpy(Path keys, Path values, Path prefillQueries, Path queries) throws IOException {
        FloatMatrix k = Npy.readMatrix(keys);
        FloatMatrix v = Npy.readMatrix(values);
        FloatMatrix pq = Npy.readMatrix(prefillQueries);
        FloatMatrix q = Npy.readMatrix(queries);
        requireDim(k, v, values);
        requireDim(k, pq, prefillQueries);
        requireDim(k, q, queries);
        if (k.rows() != v.rows()) {
            throw new IllegalArgumentException("values must have as many rows as the keys " + k.rows() + "; "
                    + values + " rows=" + v.rows());
        }
        return new BenchData("npy:" + keys.getFileName(), k, v, pq, q);
    }

    private static void requireDim(FloatMatrix keys, FloatMatrix other, Path file) {
        if (other.cols() != keys.cols()) {
            throw new IllegalArgumentException("every input must have the keys' dim " + keys.cols() + "; " + file
                    + " cols=" + other.cols());
        }
    }

    /**
     * A seeded synthetic head of {@code tokens} keys. Until the project's synthetic generator of long contexts is on
     * this branch, a small planted-structure generator: the context is cut into segments of 256 tokens, each on one
     * of 16 topics (random unit directions); a key is its segment's topic direction times a per-key loading drawn
     * uniformly from [0.5, 1.5], plus isotropic Gaussian noise. Prefill query i asks about the topic of its own
     * segment and decode queries about a random topic, so each decode query has a planted top set (the keys of its
     * topic with the largest loadings) that a query-centric index can learn from the prefill queries. Values are
     * standard Gaussian.
     */
    static BenchData synthetic(int tokens, int dim, int queryCount, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        float[][] topics = new float[TOPICS][];
        for (int t = 0; t < TOPICS; t++) {
            topics[t] = unit(random, dim);
        }
        int[] segmentTopic = new int[(tokens + SEGMENT - 1) / SEGMENT];
        for (int s = 0; s < segmentTopic.length; s++) {
            segmentTopic[s] = random.nextInt(TOPICS);
        }
        double noise = 1.0 / Math.sqrt(dim);
        float[] keys = new float[tokens * dim];
        float[] values = new float[tokens * dim];
        float[] prefill = new float[tokens * dim];
        // one generator per segment, split in order, so the data does not depend on the thread count
        SplittableRandom[] perSegment = new SplittableRandom[segmentTopic.length];
        for (int s = 0; s < perSegment.length; s++) {
            perSegment[s] = random.split();
        }
        java.util.stream.IntStream.range(0, segmentTopic.length).parallel().forEach(s -> {
            SplittableRandom segmentRandom = perSegment[s];
            float[] topic = topics[segmentTopic[s]];
            for (int i = s * SEGMENT; i < Math.min(tokens, (s + 1) * SEGMENT); i++) {
                double loading = 0.5 + segmentRandom.nextDouble();
                for (int c = 0; c < dim; c++) {
                    keys[i * dim + c] = (float) (loading * topic[c] + 0.8 * noise * gaussian(segmentRandom));
                    values[i * dim + c] = (float) gaussian(segmentRandom);
                    prefill[i * dim + c] = (float) (QUERY_SCALE * topic[c] + 2 * noise * gaussian(segmentRandom));
                }
            }
        });
        float[] queries = new float[queryCount * dim];
        for (int i = 0; i < queryCount; i++) {
            float[] topic = topics[segmentTopic[random.nextInt(segmentTopic.length)]];
            for (int c = 0; c < dim; c++) {
                queries[i * dim + c] = (float) (QUERY_SCALE * topic[c] + 2 * noise * gaussian(random));
            }
        }
        return new BenchData("planted-gaussian(seed=" + seed + ")", new FloatMatrix(tokens, dim, keys),
                new FloatMatrix(tokens, dim, values), new FloatMatrix(tokens, dim, prefill),
                new FloatMatrix(queryCount, dim, queries));
    }

    private static float[] unit(SplittableRandom random, int dim) {
        float[] v = new float[dim];
        double norm = 0;
        for (int c = 0; c < dim; c++) {
            v[c] = (float) gaussian(random);
            norm += v[c] * v[c];
        }
        for (int c = 0; c < dim; c++) {
            v[c] /= (float) Math.sqrt(norm);
        }
        return v;
    }

    private static double gaussian(SplittableRandom random) {
        double u = Math.max(Double.MIN_NORMAL, random.nextDouble());
        return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random.nextDouble());
    }

    int tokens() {
        return keys.rows();
    }

    int dim() {
        return keys.cols();
    }
}
