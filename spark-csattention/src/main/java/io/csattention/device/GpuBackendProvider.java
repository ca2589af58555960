package io.csattention.device;

/**
 * How {@link Backends} finds a GPU backend without importing it: implementations are listed in
 * {@code META-INF/services/io.csattention.device.GpuBackendProvider} and loaded with {@link java.util.ServiceLoader},
 * so nothing in this package depends on the CUDA package or on JCuda.
 */
public interface GpuBackendProvider {

    /**
     * The backend of GPU {@code ordinal}, one per device per JVM.
     *
     * @throws DeviceUnavailableException when there is no driver library, no such device, or the driver cannot run
     *                                    the backend's code
     */
    DecodeBackend forDevice(int ordinal);

    /**
     * A model prefill on GPU {@code ordinal} for contexts of up to {@code maxTokens} tokens: the model's weights
     * uploaded and the context's device memory reserved, freed by {@link PrefillDevice#close}.
     *
     * @throws DeviceUnavailableException when the device is not usable (as {@link #forDevice}) or its free memory is
     *                                    short of what the model and the context need
     * @throws IllegalArgumentException   for a model the device's kernels do not take (e.g. its head size)
     */
    PrefillDevice openPrefill(ForwardModel model, int maxTokens, int ordinal);
}
