package io.csattention.spark;

import io.csattention.core.CSAttentionSelector;
import io.csattention.core.KeyValueCache;
import io.csattention.format.IndexedHead;
import io.csattention.kernel.VectorKernels;

/** A head ready to decode on an executor: its index, KV cache and selector, shared by the executor's tasks. */
final class LoadedHead {

    final IndexedHead head;
    final KeyValueCache cache;
    final CSAttentionSelector selector;

    LoadedHead(IndexedHead head, VectorKernels kernels, double rescoreFactor) {
        this.head = head;
        this.cache = head.cache();
        this.selector = new CSAttentionSelector(kernels, head.index(), cache, rescoreFactor);
    }

    long bytes() {
        return head.bytes();
    }
}
