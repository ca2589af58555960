package io.csattention.device.cuda;

import jcuda.Pointer;
import jcuda.Sizeof;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.JCudaDriver;

/** Device memory that grows on demand and is otherwise reused (across blocks of queries, across subspaces). */
final class DeviceBuffer implements AutoCloseable {

    private final String name;
    private CUdeviceptr pointer = new CUdeviceptr();
    private long capacity;

    DeviceBuffer(String name) {
        this.name = name;
    }

    /** At least {@code bytes} bytes; the contents are lost when it grows. */
    DeviceBuffer ensure(long bytes) {
        if (bytes > capacity) {
            free();
            long size = Math.max(bytes, 256);
            CUdeviceptr fresh = new CUdeviceptr();
            Cuda.check(JCudaDriver.cuMemAlloc(fresh, size), "cuMemAlloc(" + name + ", " + size + " bytes)");
            pointer = fresh;
            capacity = size;
        }
        return this;
    }

    DeviceBuffer ensureFloats(long count) {
        return ensure(count * Sizeof.FLOAT);
    }

    DeviceBuffer ensureInts(long count) {
        return ensure(count * Sizeof.INT);
    }

    /** Synchronous upload of a whole array into a buffer sized to it. */
    DeviceBuffer upload(float[] data, int count) {
        ensureFloats(count);
        Cuda.check(JCudaDriver.cuMemcpyHtoD(pointer, Pointer.to(data), (long) count * Sizeof.FLOAT),
                "cuMemcpyHtoD(" + name + ")");
        return this;
    }

    DeviceBuffer upload(int[] data, int count) {
        ensureInts(count);
        Cuda.check(JCudaDriver.cuMemcpyHtoD(pointer, Pointer.to(data), (long) count * Sizeof.INT),
                "cuMemcpyHtoD(" + name + ")");
        return this;
    }

    DeviceBuffer upload(byte[] data, int count) {
        ensure(count);
        Cuda.check(JCudaDriver.cuMemcpyHtoD(pointer, Pointer.to(data), count), "cuMemcpyHtoD(" + name + ")");
        return this;
    }

    DeviceBuffer upload(char[] data, int count) {
        ensure((long) count * Sizeof.CHAR);
        Cuda.check(JCudaDriver.cuMemcpyHtoD(pointer, Pointer.to(data), (long) count * Sizeof.CHAR),
                "cuMemcpyHtoD(" + name + ")");
        return this;
    }

    /** Synchronous download of the first {@code count} values. */
    void download(float[] target, int count) {
        Cuda.check(JCudaDriver.cuMemcpyDtoH(Pointer.to(target), pointer, (long) count * Sizeof.FLOAT),
                "cuMemcpyDtoH(" + name + ")");
    }

    void download(int[] target, int count) {
        Cuda.check(JCudaDriver.cuMemcpyDtoH(Pointer.to(target), pointer, (long) count * Sizeof.INT),
                "cuMemcpyDtoH(" + name + ")");
    }

    CUdeviceptr pointer() {
        return pointer;
    }

    /** A pointer {@code floats} floats into the buffer. */
    CUdeviceptr atFloat(long floats) {
        return pointer.withByteOffset(floats * Sizeof.FLOAT);
    }

    private void free() {
        if (capacity > 0) {
            JCudaDriver.cuMemFree(pointer);
            capacity = 0;
            pointer = new CUdeviceptr();
        }
    }

    @Override
    public void close() {
        free();
    }
}
