package io.csattention.device;

/**
 * No usable accelerator for this JVM; the message says why in a few words (no driver library, no device, driver too
 * old for the compiled code), for the one log line of an automatic fallback and for the error of an explicit
 * {@code gpu}.
 */
public class DeviceUnavailableException extends IllegalStateException {

    public DeviceUnavailableException(String reason) {
        super(reason);
    }
}
