package io.csattention.device.cuda;

import jcuda.Pointer;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUfunction;
import jcuda.driver.JCudaDriver;

/** A kernel function looked up once; launches check the result with the kernel's name. */
final class CudaFunction {

    private final String name;
    private final CUfunction function;

    CudaFunction(String name, CUfunction function) {
        this.name = name;
        this.function = function;
    }

    /**
     * Launches on a 2-D grid of 1-D blocks. Arguments: {@link DeviceBuffer}, {@link CUdeviceptr}, {@code null} (a null
     * device pointer), Integer, Long, Float.
     */
    void launch(CudaStream stream, int gridX, int gridY, int block, int sharedBytes, Object... args) {
        Pointer[] pointers = new Pointer[args.length];
        for (int i = 0; i < args.length; i++) {
            Object arg = args[i];
            if (arg == null) {
                pointers[i] = Pointer.to(new CUdeviceptr());
            } else if (arg instanceof DeviceBuffer buffer) {
                pointers[i] = Pointer.to(buffer.pointer());
            } else if (arg instanceof CUdeviceptr pointer) {
                pointers[i] = Pointer.to(pointer);
            } else if (arg instanceof Integer value) {
                pointers[i] = Pointer.to(new int[] {value});
            } else if (arg instanceof Long value) {
                pointers[i] = Pointer.to(new long[] {value});
            } else if (arg instanceof Float value) {
                pointers[i] = Pointer.to(new float[] {value});
            } else {
                throw new IllegalArgumentException("kernel " + name + " argument " + i + " has unsupported type "
                        + arg.getClass().getName());
            }
        }
        Cuda.check(JCudaDriver.cuLaunchKernel(function, gridX, gridY, 1, block, 1, 1, sharedBytes, stream.handle(),
                Pointer.to(pointers), null), "cuLaunchKernel(" + name + ", grid " + gridX + "x" + gridY + ", block "
                + block + ", shared " + sharedBytes + ")");
        stream.launched(name);
    }
}
