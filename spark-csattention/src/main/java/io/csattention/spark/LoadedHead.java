package io.csattention.spark;

import io.csattention.core.CSAttentionSelector;
import io.csattention.core.KeyValueCache;
import io.csattention.format.IndexedHead;
import io.csattention.kernel.VectorKernels;

/**
 * A head ready to decode on an executor: its KV cache and selector, shared by the executor's tasks. The file's float
 * lists are not kept: the selector packs them into its decode form, and only that form is held.
 */
final class LoadedHead {

    final KeyValueCache cache;
    final CSAttentionSelector selector;

    LoadedHead(IndexedHead head, VectorKernels kernels, double rescoreFactor) {
        this.cache = head.cache();
        this.selector = new CSAttentionSelector(kernels, head.index(), cache, rescoreFactor);
    }

    /** What the executor cache holds for this head: float32 K and V, and the selector's decode form. */
    long bytes() {
        return 2L * Float.BYTES * cache.size() * cache.dim() + selector.indexBytes();
    }
}
