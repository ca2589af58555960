package io.csattention.device.cuda;

/**
 * No usable CUDA device for this JVM; the message says why in a few words (no driver library, no device, driver too
 * old for the PTX), for the one log line of an automatic fallback and for the error of an explicit {@code gpu}.
 */
public final class CudaUnavailableException extends io.csattention.device.DeviceUnavailableException {

    public CudaUnavailableException(String reason) {
        super(reason);
    }
}
