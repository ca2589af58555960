package io.csattention.spark;

import io.csattention.core.CSAttentionSettings;
import io.csattention.device.Backends;
import io.csattention.device.ContextDecoder;
import io.csattention.device.DecodeBackend;
import org.apache.spark.TaskContext;
import org.apache.spark.resource.ResourceInformation;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Where a decode, tensor-level build or model prefill task runs on its executor ({@link CSAttentionOptions#device}): the GPU Spark's resource scheduling
 * assigned to the task (its first {@code gpu} address), GPU 0 when the task has no such resource, or the CPU.
 *
 * <p>The CUDA side is per JVM already: {@link Backends} keeps one backend per device, in that device's primary
 * context, and logs {@code auto}'s fallback to the CPU once per JVM and device; so one executor has one CUDA context
 * per device, shared by its tasks. A head's GPU decoder (its K, V, lists and sketch in device memory) lives beside its
 * CPU form in the {@link ExecutorIndexCache} entry and is closed when that entry is evicted.
 *
 * <p>The CPU path is today's decode unchanged ({@code BlockDecoder.decodeBlock} on the head's selector); {@code auto}
 * without a usable GPU takes it, so on a machine without a GPU it gives the same rows as {@code cpu}, bit for bit.
 */
final class ExecutorDevice {

    private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(ExecutorDevice.class);

    /** Heads (with their device) that decode on the CPU under {@code auto}, with the reason logged once. */
    private static final Map<String, String> CPU_HEADS = new ConcurrentHashMap<>();

    private ExecutorDevice() {
    }

    /**
     * The CUDA ordinal of the GPU a task was assigned: its first {@code gpu} address, 0 without one. Spark's
     * addresses are what the discovery script printed; when {@code CUDA_VISIBLE_DEVICES} (given here as
     * {@code cudaVisibleDevices}, null when unset) lists that address, the ordinal is its place in the list, since
     * CUDA numbers only the devices it leaves visible (and {@code conf/getGpusResources.sh} prints that list's
     * entries, UUIDs included); otherwise the address itself must be an ordinal.
     */
    static int gpuOrdinal(Map<String, ResourceInformation> resources, String cudaVisibleDevices) {
        ResourceInformation gpu = resources == null ? null : resources.get("gpu");
        if (gpu == null || gpu.addresses().length == 0) {
            return 0;
        }
        String address = gpu.addresses()[0].trim();
        if (cudaVisibleDevices != null && !cudaVisibleDevices.isBlank()) {
            String[] visible = cudaVisibleDevices.split(",");
            for (int i = 0; i < visible.length; i++) {
                if (visible[i].trim().equals(address)) {
                    return i;
                }
            }
        }
        return Backends.gpuOrdinal(address);
    }

    /** The CUDA ordinal of the GPU the current task was assigned ({@link #gpuOrdinal}), 0 outside a task. */
    static int taskOrdinal() {
        TaskContext task = TaskContext.get();
        return gpuOrdinal(task == null ? Map.of() : task.resourcesJMap(), System.getenv("CUDA_VISIBLE_DEVICES"));
    }

    /**
     * The GPU backend the current task decodes on, or null for the CPU path. {@code gpu} without a usable device is
     * an {@link IllegalArgumentException} with the one line of {@link Backends#select}; {@code auto} then gives null
     * (and {@link Backends} logs why, once per executor and device).
     */
    static DecodeBackend forTask(Backends.Mode mode) {
        if (mode == Backends.Mode.CPU) {
            return null;
        }
        DecodeBackend backend = Backends.select(mode, taskOrdinal());
        return backend.isGpu() ? backend : null;
    }

    /**
     * The GPU decoder of a head on {@code gpu}, or null when the head decodes on the CPU: under {@code auto} when the
     * GPU decoder refuses its index (RoPE, too many subspaces) or cannot hold it (device memory), with one logged line
     * per head and device. Under {@code gpu} a refused index is an {@link IllegalArgumentException} naming the head,
     * the cause and the value.
     */
    static ContextDecoder decoder(DecodeBackend gpu, Backends.Mode mode, LoadedHead head, HeadKey key,
                                  CSAttentionSettings settings) {
        String where = key + " on " + gpu.name();
        if (CPU_HEADS.containsKey(where)) {
            return null;
        }
        String refusal = gpu.refusal(head.selector.index());
        if (refusal != null) {
            if (mode == Backends.Mode.GPU) {
                throw new IllegalArgumentException("device gpu cannot decode " + key + ": " + refusal);
            }
            return onCpu(where, refusal);
        }
        try {
            return head.gpuDecoder(gpu, settings);
        } catch (IllegalStateException e) {
            if (mode == Backends.Mode.GPU) {
                throw e;
            }
            return onCpu(where, e.getMessage());
        }
    }

    /**
     * The GPU a head's index is built on, or null for the CPU build: {@code gpu} itself (null: the task has none)
     * unless the head carries RoPE ({@code ropeBase} not 0), which the GPU build does not index position-free; such a
     * head is built on the CPU under {@code auto} (one logged line per head and device) and fails under {@code gpu}.
     */
    static DecodeBackend forBuild(DecodeBackend gpu, Backends.Mode mode, HeadKey key, double ropeBase) {
        if (gpu == null || ropeBase == 0) {
            return gpu;
        }
        String refusal = "the GPU index build takes heads without RoPE (the CPU build indexes their slow bands "
                + "position-free); ropeBase=" + ropeBase;
        if (mode == Backends.Mode.GPU) {
            throw new IllegalArgumentException("device gpu cannot build " + key + ": " + refusal);
        }
        onCpu(key + " build on " + gpu.name(), refusal);
        return null;
    }

    /** Why {@code auto} decodes {@code key} on the CPU although {@code gpu} was usable, or null when it does not. */
    static String cpuReason(HeadKey key, DecodeBackend gpu) {
        return CPU_HEADS.get(key + " on " + gpu.name());
    }

    private static ContextDecoder onCpu(String where, String reason) {
        if (CPU_HEADS.putIfAbsent(where, reason) == null) {
            LOG.info("device: cpu for {} (auto: {})", where, reason);
        }
        return null;
    }
}
