package io.csattention.device;

import io.csattention.core.Attention;
import io.csattention.core.BlockDecoder;
import io.csattention.core.BudgetPlan;
import io.csattention.core.CSAttentionIndex;
import io.csattention.core.CSAttentionSelector;
import io.csattention.core.CSAttentionSettings;
import io.csattention.core.Check;
import io.csattention.core.FloatMatrix;
import io.csattention.core.KeyValueCache;
import io.csattention.kernel.VectorKernels;

import java.util.stream.IntStream;

/** The reference backend: {@code io.csattention.core} on the CPU kernels, queries of a block decoded in parallel. */
public final class CpuDecodeBackend implements DecodeBackend {

    private final VectorKernels kernels;

    public CpuDecodeBackend(VectorKernels kernels) {
        this.kernels = kernels;
    }

    @Override
    public String name() {
        return "cpu (" + kernels.name() + ")";
    }

    @Override
    public boolean isGpu() {
        return false;
    }

    @Override
    public CSAttentionIndex buildIndex(FloatMatrix keys, FloatMatrix prefillQueries, CSAttentionSettings settings) {
        return CSAttentionIndex.build(kernels, keys, prefillQueries, settings);
    }

    @Override
    public ContextDecoder open(KeyValueCache cache, CSAttentionIndex index, CSAttentionSettings settings) {
        checkContext(cache, index);
        return new CpuContextDecoder(cache, index, settings);
    }

    @Override
    public ContextDecoder openFromSelector(KeyValueCache cache, CSAttentionSelector selector,
                                           CSAttentionSettings settings) {
        checkContext(cache, selector.index());
        return new CpuContextDecoder(cache, selector, settings);
    }

    /** The checks every backend's {@link #open} makes. */
    public static void checkContext(KeyValueCache cache, CSAttentionIndex index) {
        Check.positive(cache.size(), "cache size");
        if (index != null) {
            Check.that(index.dim() == cache.dim(), "index must have the cache's dim " + cache.dim(), "index.dim",
                    index.dim());
            Check.that(index.keys() == cache.size(), "index must cover exactly the cache's " + cache.size()
                    + " keys (streamed keys are decoded by CSAttentionSelector)", "index.keys", index.keys());
        }
    }

    /** The checks every decoder makes on a block of queries. */
    public static void checkQueries(FloatMatrix queries, int dim) {
        Check.that(queries.cols() == dim, "queries must have the context's dim " + dim, "queries.cols",
                queries.cols());
    }

    private final class CpuContextDecoder implements ContextDecoder {
        private final KeyValueCache cache;
        private final CSAttentionSelector selector;
        private final BudgetPlan plan;

        CpuContextDecoder(KeyValueCache cache, CSAttentionIndex index, CSAttentionSettings settings) {
            this(cache, index == null ? null : new CSAttentionSelector(kernels, index, cache,
                    settings.rescoreFactor()), settings);
        }

        CpuContextDecoder(KeyValueCache cache, CSAttentionSelector selector, CSAttentionSettings settings) {
            this.cache = cache;
            this.selector = selector;
            this.plan = settings.plan(cache.size());
        }

        @Override
        public BudgetPlan plan() {
            return plan;
        }

        @Override
        public DecodedBlock decode(FloatMatrix queries) {
            Check.that(selector != null, "decode needs an index; open the context with one", "index", "null");
            checkQueries(queries, cache.dim());
            int d = cache.dim();
            int budget = plan.budget();
            int[] selected = new int[queries.rows() * budget];
            float[] outputs = new float[queries.rows() * d];
            int block = BlockDecoder.DEFAULT_QUERY_BLOCK; // queries of a block share the re-scoring sweep
            IntStream.range(0, (queries.rows() + block - 1) / block).parallel().forEach(b -> {
                int first = b * block;
                int count = Math.min(block, queries.rows() - first);
                int[][] keys = BlockDecoder.decodeBlock(kernels, cache, selector, plan, queries.data(), first, count,
                        null, outputs);
                for (int i = 0; i < count; i++) {
                    System.arraycopy(keys[i], 0, selected, (first + i) * budget, budget);
                }
            });
            return new DecodedBlock(plan, selected, new FloatMatrix(queries.rows(), d, outputs));
        }

        @Override
        public FloatMatrix attendAll(FloatMatrix queries) {
            checkQueries(queries, cache.dim());
            int d = cache.dim();
            int[] all = IntStream.range(0, cache.size()).toArray();
            float[] outputs = new float[queries.rows() * d];
            IntStream.range(0, queries.rows()).parallel().forEach(q ->
                    Attention.attend(kernels, queries.data(), q * d, cache, all, outputs, q * d));
            return new FloatMatrix(queries.rows(), d, outputs);
        }

        @Override
        public void close() {
        }
    }
}
