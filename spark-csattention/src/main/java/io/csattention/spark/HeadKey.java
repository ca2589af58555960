package io.csattention.spark;

import java.io.Serializable;

/** One KV head of one layer of one context: what an index file holds. */
public record HeadKey(String contextId, int layer, int kvHead) implements Serializable, Comparable<HeadKey> {

    @Override
    public int compareTo(HeadKey o) {
        int c = contextId.compareTo(o.contextId);
        if (c != 0) {
            return c;
        }
        c = Integer.compare(layer, o.layer);
        return c != 0 ? c : Integer.compare(kvHead, o.kvHead);
    }

    @Override
    public String toString() {
        return "context_id=" + contextId + " layer=" + layer + " kv_head=" + kvHead;
    }
}
