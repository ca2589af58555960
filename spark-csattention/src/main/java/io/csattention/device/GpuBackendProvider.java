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
}
