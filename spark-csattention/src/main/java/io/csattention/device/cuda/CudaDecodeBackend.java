package io.csattention.device.cuda;

import io.csattention.core.CSAttentionIndex;
import io.csattention.core.CSAttentionSelector;
import io.csattention.core.CSAttentionSettings;
import io.csattention.core.FloatMatrix;
import io.csattention.core.KeyValueCache;
import io.csattention.device.ContextDecoder;
import io.csattention.device.CpuDecodeBackend;
import io.csattention.device.DecodeBackend;
import jcuda.driver.CUevent;
import jcuda.driver.JCudaDriver;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The GPU backend: the CUDA kernels of {@code kernels/} (PTX loaded from the class path) through JCuda's driver API,
 * on one device, in that device's primary context (one per JVM). Index builds run k-means++ seeding on the CPU (as
 * {@code KMeans} does, so both backends start from the same centroids) and the Lloyd iterations, the centroid x key
 * scores and the top-L lists on the GPU. Decoders keep a context's keys, values and index (in the CPU decoder's packed
 * form, with its int8 key sketch) in device memory and reuse their buffers across blocks of queries.
 */
public final class CudaDecodeBackend implements DecodeBackend {

    private static final Map<Integer, CudaDecodeBackend> BACKENDS = new ConcurrentHashMap<>();

    private final CudaDevice device;

    private CudaDecodeBackend(CudaDevice device) {
        this.device = device;
    }

    /**
     * The backend of GPU {@code ordinal}, one per device per JVM.
     *
     * @throws CudaUnavailableException when there is no driver library, no such device, or the driver is too old for
     *                                  the PTX
     */
    public static CudaDecodeBackend forDevice(int ordinal) {
        CudaDevice device = CudaDevice.open(ordinal);
        return BACKENDS.computeIfAbsent(ordinal, o -> new CudaDecodeBackend(device));
    }

    @Override
    public String name() {
        return "gpu " + device.ordinal() + ": " + device.name();
    }

    @Override
    public boolean isGpu() {
        return true;
    }

    /** The device in one line: name, multiprocessors, memory, driver, PTX. */
    public String describe() {
        return name() + ", " + device.multiprocessors() + " SMs, " + (device.totalMemory() >> 20) + " MiB, driver CUDA "
                + PtxModules.cudaVersion(device.driverVersion()) + ", PTX ISA " + device.ptx().isa() + " ("
                + device.ptx().target() + ")";
    }

    @Override
    public synchronized CSAttentionIndex buildIndex(FloatMatrix keys, FloatMatrix prefillQueries,
                                                    CSAttentionSettings settings) {
        device.makeCurrent();
        try (CudaIndexBuilder builder = new CudaIndexBuilder(device)) {
            return builder.build(keys, prefillQueries, settings);
        }
    }

    @Override
    public ContextDecoder open(KeyValueCache cache, CSAttentionIndex index, CSAttentionSettings settings) {
        CpuDecodeBackend.checkContext(cache, index);
        CudaContextDecoder.checkIndex(index);
        return new CudaContextDecoder(device, cache, index, settings);
    }

    @Override
    public ContextDecoder openFromSelector(KeyValueCache cache, CSAttentionSelector selector,
                                           CSAttentionSettings settings) {
        CpuDecodeBackend.checkContext(cache, selector.index());
        CudaContextDecoder.checkIndex(selector.index());
        return new CudaContextDecoder(device, cache, selector.index(), selector.packedLists(), selector.sketch(),
                settings);
    }

    @Override
    public String refusal(CSAttentionIndex index) {
        try {
            CudaContextDecoder.checkIndex(index);
            return null;
        } catch (IllegalArgumentException e) {
            return e.getMessage();
        }
    }

    /**
     * The card's device-to-device copy bandwidth in bytes per second, counting bytes read plus bytes written (the
     * convention of the decode's achieved bandwidth), from {@code repetitions} copies of {@code bytes} bytes timed with
     * events after one warm-up copy.
     */
    public synchronized double copyBandwidth(long bytes, int repetitions) {
        device.makeCurrent();
        try (DeviceBuffer source = new DeviceBuffer("copy source").ensure(bytes);
             DeviceBuffer target = new DeviceBuffer("copy target").ensure(bytes);
             CudaStream stream = new CudaStream(device)) {
            CUevent start = new CUevent();
            CUevent stop = new CUevent();
            Cuda.check(JCudaDriver.cuEventCreate(start, 0), "cuEventCreate");
            Cuda.check(JCudaDriver.cuEventCreate(stop, 0), "cuEventCreate");
            try {
                Cuda.check(JCudaDriver.cuMemsetD32Async(source.pointer(), 0, bytes / 4, stream.handle()),
                        "cuMemsetD32Async(copy source)");
                Cuda.check(JCudaDriver.cuMemcpyDtoDAsync(target.pointer(), source.pointer(), bytes, stream.handle()),
                        "cuMemcpyDtoDAsync");
                Cuda.check(JCudaDriver.cuEventRecord(start, stream.handle()), "cuEventRecord");
                for (int r = 0; r < repetitions; r++) {
                    Cuda.check(JCudaDriver.cuMemcpyDtoDAsync(target.pointer(), source.pointer(), bytes,
                            stream.handle()), "cuMemcpyDtoDAsync");
                }
                Cuda.check(JCudaDriver.cuEventRecord(stop, stream.handle()), "cuEventRecord");
                Cuda.check(JCudaDriver.cuEventSynchronize(stop), "cuEventSynchronize");
                float[] millis = new float[1];
                Cuda.check(JCudaDriver.cuEventElapsedTime(millis, start, stop), "cuEventElapsedTime");
                return 2.0 * bytes * repetitions / (millis[0] / 1e3);
            } finally {
                JCudaDriver.cuEventDestroy(start);
                JCudaDriver.cuEventDestroy(stop);
            }
        }
    }
}
