package io.csattention.device.cuda;

import io.csattention.device.DecodeBackend;
import io.csattention.device.GpuBackendProvider;

/** The CUDA backend as a {@link GpuBackendProvider} (registered in {@code META-INF/services}). */
public final class CudaBackendProvider implements GpuBackendProvider {

    @Override
    public DecodeBackend forDevice(int ordinal) {
        return CudaDecodeBackend.forDevice(ordinal);
    }
}
