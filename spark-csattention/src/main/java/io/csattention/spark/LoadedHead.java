package io.csattention.spark;

import io.csattention.core.BudgetPlan;
import io.csattention.core.CSAttentionSelector;
import io.csattention.core.CSAttentionSettings;
import io.csattention.core.KeyValueCache;
import io.csattention.device.ContextDecoder;
import io.csattention.device.DecodeBackend;
import io.csattention.format.IndexedHead;
import io.csattention.kernel.VectorKernels;

import java.util.HashMap;
import java.util.Map;

/**
 * A head ready to decode on an executor: its KV cache and selector, shared by the executor's tasks. The file's float
 * lists are not kept: the selector packs them into its decode form, and only that form is held. Under the GPU device
 * it also holds the head's GPU decoders (one per device and budget plan, opened on first use), which keep K, V, the
 * lists and the key sketch in device memory until the cache evicts the head ({@link #close}).
 */
final class LoadedHead implements AutoCloseable {

    final KeyValueCache cache;
    final CSAttentionSelector selector;

    /** A GPU decoder fixes its device and its budget plan when it is opened. */
    private record GpuKey(DecodeBackend backend, BudgetPlan plan) {
    }

    private final Map<GpuKey, ContextDecoder> gpuDecoders = new HashMap<>();
    private boolean closed;

    LoadedHead(IndexedHead head, VectorKernels kernels, double rescoreFactor) {
        this.cache = head.cache();
        this.selector = new CSAttentionSelector(kernels, head.index(), cache, rescoreFactor);
    }

    /**
     * What the executor cache holds for this head in host memory: float32 K and V, and the selector's decode form.
     * Device memory is not counted here (it is another memory): see {@link #gpuDecoder}.
     */
    long bytes() {
        return 2L * Float.BYTES * cache.size() * cache.dim() + selector.indexBytes();
    }

    /**
     * The head's decoder on {@code gpu} for {@code settings}' budget plan, opened (K, V, lists and sketch uploaded)
     * on first use. Its device bytes are about {@link #bytes} (the same K, V, packed lists and int8 sketch), so the
     * heads' device forms together stay near {@code cacheBudget}, plus per-launch buffers of about
     * {@code blockSize x keys x 4} bytes; failures of the device (out of memory) are {@link IllegalStateException}s.
     */
    synchronized ContextDecoder gpuDecoder(DecodeBackend gpu, CSAttentionSettings settings) {
        if (closed) {
            throw new IllegalStateException("the head was evicted from the executor cache while borrowed");
        }
        GpuKey key = new GpuKey(gpu, settings.plan(cache.size()));
        ContextDecoder decoder = gpuDecoders.get(key);
        if (decoder == null) {
            decoder = gpu.openFromSelector(cache, selector, settings);
            gpuDecoders.put(key, decoder);
        }
        return decoder;
    }

    /** Releases the GPU decoders' device memory; the cache calls it when it evicts the head (nobody borrows it). */
    @Override
    public synchronized void close() {
        closed = true;
        for (ContextDecoder decoder : gpuDecoders.values()) {
            decoder.close();
        }
        gpuDecoders.clear();
    }
}
