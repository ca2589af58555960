package io.csattention.model;

import io.csattention.device.Backends;
import io.csattention.device.PrefillDevice;

import java.util.Optional;

/**
 * A session's prefill where {@link Backends#prefillDevice} says: on the CPU ({@link Session#prefill}), or on a GPU,
 * whose keys, values and prefill queries are then copied to the host and loaded into the session
 * ({@link Session#loadPrefill}), so its decode steps and index builds go on on the CPU as after a CPU prefill. The
 * device is opened for the one context (the model's weights uploaded each time) and closed after it.
 *
 * <p>The GPU sums in another order than the CPU (float32 either way), so its logits, keys and values differ in the
 * last bits and greedy tokens may differ at near-ties; the commands and Spark options default to {@code cpu} for that
 * reason. A session that already holds tokens is prefilled on the CPU: the device holds no earlier context.
 */
public final class DevicePrefill {

    private DevicePrefill() {
    }

    /** Prefills {@code tokens} into {@code session} on {@code mode}'s device (GPU {@code ordinal}); the last logits. */
    public static float[] prefill(Session session, int[] tokens, Backends.Mode mode, int ordinal) {
        if (mode == Backends.Mode.CPU || session.position() != 0) {
            return session.prefill(tokens);
        }
        // the CPU path's one-line errors for bad tokens and lengths, before any device work
        session.checkTokens(tokens);
        Optional<PrefillDevice> opened = Backends.prefillDevice(mode, ordinal, LlamaForwardModel.of(session.model()),
                tokens.length);
        if (opened.isEmpty()) {
            return session.prefill(tokens);
        }
        try (PrefillDevice device = opened.get()) {
            float[] logits = device.prefill(tokens);
            return session.loadPrefill(tokens, device::layerRows, logits);
        }
    }
}
