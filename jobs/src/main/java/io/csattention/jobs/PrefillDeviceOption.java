package io.csattention.jobs;

import io.csattention.device.Backends;
import io.csattention.model.DevicePrefill;
import io.csattention.model.Session;
import picocli.CommandLine.Option;

/**
 * {@code --device cpu|gpu|auto} and {@code --gpu N} of the commands that prefill a model context ({@code generate},
 * {@code dump-qkv}): where {@link DevicePrefill} runs the prefill; decode stays on the CPU. Unlike
 * {@link DeviceOption} the default is {@code cpu}, because the GPU's sums differ from the CPU's in the last bits and
 * greedy tokens must not change at near-ties with the machine a command runs on; the GPU is for users who ask.
 */
final class PrefillDeviceOption {

    @Option(names = "--device", paramLabel = "cpu|gpu|auto", defaultValue = "cpu",
            description = "Where the model prefill runs: cpu, gpu (GPU --gpu; an error without a usable device) or "
                    + "auto (that GPU when usable, else the CPU with one log line saying why); decode runs on the "
                    + "CPU. Default: ${DEFAULT-VALUE}, so greedy tokens do not depend on the machine.")
    String device;

    @Option(names = "--gpu", paramLabel = "ORDINAL", defaultValue = "0",
            description = "CUDA device ordinal of the gpu and auto prefill. Default: ${DEFAULT-VALUE}.")
    int gpu;

    /** The parsed mode; fails with {@code device must be one of auto, cpu, gpu; device=...}. */
    Backends.Mode mode() {
        return Backends.Mode.parse(device);
    }

    /** {@code session}'s prefill of {@code tokens} where these options say; the last token's logits. */
    float[] prefill(Session session, int[] tokens) {
        return DevicePrefill.prefill(session, tokens, mode(), gpu);
    }
}
