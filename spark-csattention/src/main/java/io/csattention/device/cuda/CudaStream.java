package io.csattention.device.cuda;

import jcuda.driver.CUstream;
import jcuda.driver.JCudaDriver;

import java.util.LinkedHashSet;
import java.util.Set;

/**
 * A CUDA stream that remembers which kernels ran since its last synchronisation, so that an asynchronous fault
 * (reported at the sync) still names the kernels that may have caused it.
 */
final class CudaStream implements AutoCloseable {

    private final CUstream handle;
    private final Set<String> pending = new LinkedHashSet<>();

    CudaStream(CudaDevice device) {
        this.handle = device.newStream();
    }

    CUstream handle() {
        return handle;
    }

    void launched(String kernel) {
        pending.add(kernel);
    }

    void synchronize() {
        int result = JCudaDriver.cuStreamSynchronize(handle);
        String kernels = String.join(", ", pending);
        pending.clear();
        Cuda.check(result, "cuStreamSynchronize (kernels since the last sync: " + (kernels.isEmpty() ? "none"
                : kernels) + ")");
    }

    @Override
    public void close() {
        JCudaDriver.cuStreamDestroy(handle);
    }
}
