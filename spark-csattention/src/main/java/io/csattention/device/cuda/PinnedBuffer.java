package io.csattention.device.cuda;

import jcuda.Pointer;
import jcuda.driver.JCudaDriver;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/** Page-locked host memory for asynchronous copies; grows on demand and is otherwise reused. */
final class PinnedBuffer implements AutoCloseable {

    private final String name;
    private Pointer pointer = new Pointer();
    private ByteBuffer bytes;
    private long capacity;

    PinnedBuffer(String name) {
        this.name = name;
    }

    PinnedBuffer ensure(long size) {
        if (size > capacity) {
            free();
            long allocation = Math.max(size, 4096);
            Pointer fresh = new Pointer();
            Cuda.check(JCudaDriver.cuMemAllocHost(fresh, allocation), "cuMemAllocHost(" + name + ", " + allocation
                    + " bytes)");
            pointer = fresh;
            capacity = allocation;
            bytes = fresh.getByteBuffer(0, allocation).order(ByteOrder.nativeOrder());
        }
        return this;
    }

    Pointer pointer() {
        return pointer;
    }

    /** The memory as a native-order buffer positioned at 0. */
    ByteBuffer bytes() {
        bytes.clear();
        return bytes;
    }

    private void free() {
        if (capacity > 0) {
            JCudaDriver.cuMemFreeHost(pointer);
            capacity = 0;
            pointer = new Pointer();
            bytes = null;
        }
    }

    @Override
    public void close() {
        free();
    }
}
