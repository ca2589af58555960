package io.csattention.device.cuda;

import io.csattention.device.DecodeBackend;
import io.csattention.device.ForwardModel;
import io.csattention.device.GpuBackendProvider;
import io.csattention.device.PrefillDevice;

/** The CUDA backend as a {@link GpuBackendProvider} (registered in {@code META-INF/services}). */
public final class CudaBackendProvider implements GpuBackendProvider {

    @Override
    public DecodeBackend forDevice(int ordinal) {
        return CudaDecodeBackend.forDevice(ordinal);
    }

    @Override
    public PrefillDevice openPrefill(ForwardModel model, int maxTokens, int ordinal) {
        return GpuModelForward.open(model, maxTokens, ordinal);
    }
}
