package io.csattention.spark;

import io.csattention.core.BudgetPlan;
import io.csattention.core.CSAttentionIndex;
import io.csattention.core.CSAttentionSettings;
import io.csattention.core.FloatMatrix;
import io.csattention.core.IndexBuilder;
import io.csattention.core.KeyValueCache;
import io.csattention.device.Backends;
import io.csattention.device.ContextDecoder;
import io.csattention.device.DecodeBackend;
import io.csattention.device.DecodedBlock;
import io.csattention.format.IndexedHead;
import io.csattention.kernel.ScalarKernels;
import org.apache.spark.resource.ResourceInformation;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Where a decode task runs: the GPU ordinal of a task from the resources Spark assigned it (as
 * {@code TaskContext.resourcesJMap()} gives them), and the choice per head between a GPU decoder and the CPU, on a
 * backend that stands for a usable GPU (it says it is one and opens the CPU backend's decoders, counting their closes)
 * since this machine has none.
 */
class ExecutorDeviceTest {

    private static Map<String, ResourceInformation> gpus(String... addresses) {
        return Map.of("gpu", new ResourceInformation("gpu", addresses));
    }

    @Test
    void theFirstAssignedAddressIsTheOrdinal() {
        assertEquals(3, ExecutorDevice.gpuOrdinal(gpus("3"), null));
        assertEquals(1, ExecutorDevice.gpuOrdinal(gpus("1", "0"), null));
        assertEquals(2, ExecutorDevice.gpuOrdinal(gpus(" 2 "), ""));
    }

    @Test
    void withoutAGpuResourceTheOrdinalIsZero() {
        assertEquals(0, ExecutorDevice.gpuOrdinal(Map.of(), null));
        assertEquals(0, ExecutorDevice.gpuOrdinal(null, "5"));
        assertEquals(0, ExecutorDevice.gpuOrdinal(gpus(), null));
        assertEquals(0, ExecutorDevice.gpuOrdinal(Map.of("fpga", new ResourceInformation("fpga",
                new String[] {"4"})), null));
    }

    @Test
    void anAddressListedInCudaVisibleDevicesIsItsPlaceThere() {
        // getGpusResources.sh prints CUDA_VISIBLE_DEVICES' entries, and CUDA numbers only those devices, from 0
        assertEquals(1, ExecutorDevice.gpuOrdinal(gpus("3"), "2,3"));
        assertEquals(0, ExecutorDevice.gpuOrdinal(gpus("2"), "2, 3"));
        assertEquals(1, ExecutorDevice.gpuOrdinal(gpus("GPU-9f3c"), "GPU-11aa,GPU-9f3c"));
        // an address the list does not hold is taken as an ordinal
        assertEquals(1, ExecutorDevice.gpuOrdinal(gpus("1"), "4,5"));
    }

    @Test
    void anAddressThatIsNoOrdinalFailsWithOneLine() {
        assertEquals("gpu address must be a CUDA device ordinal (0, 1, ...); gpu=GPU-9f3c",
                assertThrows(IllegalArgumentException.class,
                        () -> ExecutorDevice.gpuOrdinal(gpus("GPU-9f3c"), null)).getMessage());
        assertEquals("gpu address must be a CUDA device ordinal (0, 1, ...); gpu=-1",
                assertThrows(IllegalArgumentException.class,
                        () -> ExecutorDevice.gpuOrdinal(gpus("-1"), "0")).getMessage());
    }

    /** A usable "GPU" whose decoders are the CPU backend's; refuses every index when given a refusal. */
    private static final class StandInGpu implements DecodeBackend {
        final String refusal;
        final List<ContextDecoder> opened = new ArrayList<>();
        int closes;

        StandInGpu(String refusal) {
            this.refusal = refusal;
        }

        @Override
        public String name() {
            return "gpu 0: stand-in " + System.identityHashCode(this);
        }

        @Override
        public boolean isGpu() {
            return true;
        }

        @Override
        public CSAttentionIndex buildIndex(FloatMatrix keys, FloatMatrix prefillQueries, CSAttentionSettings s) {
            return Backends.cpu().buildIndex(keys, prefillQueries, s);
        }

        @Override
        public String refusal(CSAttentionIndex index) {
            return refusal;
        }

        @Override
        public ContextDecoder open(KeyValueCache cache, CSAttentionIndex index, CSAttentionSettings s) {
            throw new AssertionError("the executors open the selector's decode form");
        }

        @Override
        public ContextDecoder openFromSelector(KeyValueCache cache, io.csattention.core.CSAttentionSelector selector,
                                   CSAttentionSettings s) {
            ContextDecoder cpu = Backends.cpu().openFromSelector(cache, selector, s);
            ContextDecoder counted = new ContextDecoder() {
                @Override
                public BudgetPlan plan() {
                    return cpu.plan();
                }

                @Override
                public DecodedBlock decode(FloatMatrix queries) {
                    return cpu.decode(queries);
                }

                @Override
                public FloatMatrix attendAll(FloatMatrix queries) {
                    return cpu.attendAll(queries);
                }

                @Override
                public void close() {
                    closes++;
                    cpu.close();
                }
            };
            opened.add(counted);
            return counted;
        }
    }

    private static LoadedHead head(int h) {
        TestTensors data = new TestTensors(1, 1, h + 1, 4096, 32, 11L);
        CSAttentionSettings settings = CSAttentionSettings.defaults().withCentroids(16);
        CSAttentionIndex index = IndexBuilder.build(ScalarKernels.INSTANCE, data.keys(0, 0, h), data.prefill(0, 0, h),
                settings, null);
        return new LoadedHead(new IndexedHead("ctx-0", 0, h, index, data.keys(0, 0, h), data.values(0, 0, h)),
                ScalarKernels.INSTANCE, settings.rescoreFactor());
    }

    @Test
    void aHeadKeepsOneGpuDecoderPerPlanUntilItIsClosed() {
        LoadedHead head = head(0);
        HeadKey key = new HeadKey("ctx-0", 0, 0);
        StandInGpu gpu = new StandInGpu(null);
        CSAttentionSettings settings = CSAttentionSettings.defaults().withSparsity(0.9);
        ContextDecoder first = ExecutorDevice.decoder(gpu, Backends.Mode.GPU, head, key, settings);
        assertSame(first, ExecutorDevice.decoder(gpu, Backends.Mode.AUTO, head, key, settings),
                "tasks reuse the head's decoder");
        ContextDecoder sparser = ExecutorDevice.decoder(gpu, Backends.Mode.GPU, head, key, settings.withSparsity(0.95));
        assertNotSame(first, sparser, "a decoder fixes its budget plan");
        assertEquals(settings.withSparsity(0.95).plan(4096), sparser.plan());
        assertEquals(2, gpu.opened.size());
        assertNull(ExecutorDevice.cpuReason(key, gpu));
        head.close();
        assertEquals(2, gpu.closes);
        assertEquals("the head was evicted from the executor cache while borrowed", assertThrows(
                IllegalStateException.class, () -> head.gpuDecoder(gpu, settings)).getMessage());
    }

    @Test
    void theCacheClosesTheGpuDecodersOfTheHeadsItEvicts() throws java.io.IOException {
        LoadedHead head = head(1);
        StandInGpu gpu = new StandInGpu(null);
        ExecutorIndexCache cache = new ExecutorIndexCache();
        long budget = head.bytes();
        try (ExecutorIndexCache.Lease lease = cache.borrow("a", "a", budget, budget, () -> head, null)) {
            ExecutorDevice.decoder(gpu, Backends.Mode.GPU, lease.head(), new HeadKey("ctx-0", 0, 1),
                    CSAttentionSettings.defaults());
        }
        assertEquals(0, gpu.closes, "a cached head keeps its decoder");
        LoadedHead other = head(2);
        cache.borrow("b", "b", other.bytes(), Math.max(budget, other.bytes()), () -> other, null).close();
        assertEquals(1, gpu.closes, "evicting the head freed its device memory");
    }

    @Test
    void aRefusedIndexDecodesOnTheCpuUnderAutoAndFailsUnderGpu() {
        LoadedHead head = head(0);
        HeadKey key = new HeadKey("ctx-0", 0, 0);
        String refusal = "the GPU decoder takes an index built without RoPE information (the CPU decoder de-rotates "
                + "its slow bands); index.rope=set";
        StandInGpu gpu = new StandInGpu(refusal);
        assertEquals("device gpu cannot decode context_id=ctx-0 layer=0 kv_head=0: " + refusal,
                assertThrows(IllegalArgumentException.class, () -> ExecutorDevice.decoder(gpu, Backends.Mode.GPU,
                        head, key, CSAttentionSettings.defaults())).getMessage());
        assertNull(ExecutorDevice.cpuReason(key, gpu), "gpu fails, it does not fall back");
        assertNull(ExecutorDevice.decoder(gpu, Backends.Mode.AUTO, head, key, CSAttentionSettings.defaults()));
        assertEquals(refusal, ExecutorDevice.cpuReason(key, gpu));
        assertNull(ExecutorDevice.decoder(gpu, Backends.Mode.AUTO, head, key, CSAttentionSettings.defaults()));
        assertTrue(gpu.opened.isEmpty());
    }

    @Test
    void ropeHeadsBuildOnTheCpuUnderAutoAndFailUnderGpu() {
        StandInGpu gpu = new StandInGpu(null);
        HeadKey key = new HeadKey("ctx-1", 2, 3);
        assertSame(gpu, ExecutorDevice.forBuild(gpu, Backends.Mode.GPU, key, 0));
        assertNull(ExecutorDevice.forBuild(null, Backends.Mode.AUTO, key, 10000), "no GPU: the CPU build");
        assertEquals("device gpu cannot build context_id=ctx-1 layer=2 kv_head=3: the GPU index build takes heads "
                        + "without RoPE (the CPU build indexes their slow bands position-free); ropeBase=10000.0",
                assertThrows(IllegalArgumentException.class,
                        () -> ExecutorDevice.forBuild(gpu, Backends.Mode.GPU, key, 10000)).getMessage());
        assertNull(ExecutorDevice.forBuild(gpu, Backends.Mode.AUTO, key, 10000));
    }
}
