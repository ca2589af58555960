package io.csattention.jobs;

import io.csattention.device.Backends;
import io.csattention.device.DecodeBackend;
import picocli.CommandLine.Option;

/**
 * {@code --device auto|cpu|gpu} and {@code --gpu N}, for every command that builds indexes or decodes: include it
 * with {@code @Mixin DeviceOption device;} and call {@link #select()} once. The default comes from the system
 * property {@value Backends#SETTING} (the same key as the Spark setting), else {@code auto}.
 */
public final class DeviceOption {

    @Option(names = "--device", paramLabel = "auto|cpu|gpu", defaultValue = "${sys:csattention.device:-auto}",
            description = "Where index build and decode run: auto (GPU when a driver and device are usable, else CPU "
                    + "with one log line saying why), cpu, or gpu (an error without a usable device). "
                    + "Default: ${DEFAULT-VALUE}.")
    String device;

    @Option(names = "--gpu", paramLabel = "ORDINAL", defaultValue = "0",
            description = "CUDA device ordinal used by the gpu and auto devices. Default: ${DEFAULT-VALUE}.")
    int gpu;

    /** The parsed mode; fails with {@code device must be one of auto, cpu, gpu; device=...}. */
    public Backends.Mode mode() {
        return Backends.Mode.parse(device);
    }

    public int gpuOrdinal() {
        return gpu;
    }

    /** The backend these options choose. */
    public DecodeBackend select() {
        return Backends.select(mode(), gpu);
    }
}
