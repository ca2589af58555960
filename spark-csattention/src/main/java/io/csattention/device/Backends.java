package io.csattention.device;

import io.csattention.kernel.Kernels;

import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.logging.Logger;

/**
 * Chooses the {@link DecodeBackend} from the setting {@value #SETTING} (the device: {@code auto}, {@code cpu} or {@code gpu}) and
 * a GPU ordinal (the address Spark's resource scheduling assigned to the executor, 0 elsewhere).
 *
 * <ul>
 *   <li>{@code cpu}: the CPU backend.</li>
 *   <li>{@code gpu}: the CUDA backend on that device, or an {@link IllegalArgumentException} saying why there is
 *       none (no driver library, no device, driver too old for the PTX); never a JVM crash.</li>
 *   <li>{@code auto}: the CUDA backend when a driver and the device are usable, otherwise the CPU backend, logging
 *       once per JVM and device one line that says why it fell back.</li>
 * </ul>
 *
 * <p>{@link #prefillDevice} chooses where a model prefill runs in the same three ways.
 */
public final class Backends {

    /** The configuration key (Spark conf, defaults file) that selects the backend. */
    public static final String SETTING = "csattention.device";

    private static final Logger LOG = Logger.getLogger(Backends.class.getName());
    private static final Map<Integer, String> FALLBACK_LOGGED = new ConcurrentHashMap<>();
    /** The model prefill's fallback lines logged in this JVM (each distinct line once). */
    private static final Map<String, Boolean> PREFILL_FALLBACK_LOGGED = new ConcurrentHashMap<>();
    private static volatile CpuDecodeBackend cpu;

    private Backends() {
    }

    /** The backends a user can name. */
    public enum Mode {
        AUTO, CPU, GPU;

        /** The mode of a setting value, or an error naming the accepted values. */
        public static Mode parse(String value) {
            String trimmed = value == null ? "" : value.trim();
            for (Mode mode : values()) {
                if (mode.name().equalsIgnoreCase(trimmed)) {
                    return mode;
                }
            }
            throw new IllegalArgumentException("device must be one of auto, cpu, gpu; device=" + value);
        }

        public String id() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    /** {@link #select(String, int)} on GPU 0. */
    public static DecodeBackend select(String mode) {
        return select(mode, 0);
    }

    /** The backend for a mode ({@code auto}, {@code cpu}, {@code gpu}) and a GPU ordinal. */
    public static DecodeBackend select(String mode, int gpuOrdinal) {
        return select(Mode.parse(mode), gpuOrdinal);
    }

    public static DecodeBackend select(Mode mode, int gpuOrdinal) {
        return switch (mode) {
            case CPU -> cpu();
            case GPU -> {
                try {
                    yield gpu(gpuOrdinal);
                } catch (DeviceUnavailableException e) {
                    throw gpuNeeded(e);
                }
            }
            case AUTO -> {
                try {
                    yield gpu(gpuOrdinal);
                } catch (DeviceUnavailableException e) {
                    String line = "device: cpu (auto fell back from gpu " + gpuOrdinal + ": " + e.getMessage() + ")";
                    if (FALLBACK_LOGGED.putIfAbsent(gpuOrdinal, line) == null) {
                        LOG.info(line);
                    }
                    yield cpu();
                }
            }
        };
    }

    /**
     * Where a model prefill of up to {@code maxTokens} tokens runs: empty for the CPU ({@code cpu}, or {@code auto}
     * without a usable GPU, logging once per JVM one line that says why), else the prefill on GPU {@code ordinal},
     * which the caller closes. Under {@code gpu} a device that is not usable (no driver, no device, too little free
     * memory) is the {@link IllegalArgumentException} of {@link #select}, {@code device gpu needs a usable CUDA
     * device: <why>; device=gpu}, and a model the GPU kernels do not take is their one-line error.
     */
    public static Optional<PrefillDevice> prefillDevice(Mode mode, int ordinal, ForwardModel model, int maxTokens) {
        if (mode == Mode.CPU) {
            return Optional.empty();
        }
        checkOrdinal(ordinal);
        try {
            return Optional.of(openPrefill(ordinal, model, maxTokens));
        } catch (DeviceUnavailableException | IllegalArgumentException e) {
            if (mode == Mode.GPU) {
                throw e instanceof DeviceUnavailableException unavailable ? gpuNeeded(unavailable) : e;
            }
            String line = "device: cpu for the model prefill (auto fell back from gpu " + ordinal + ": "
                    + e.getMessage() + ")";
            if (PREFILL_FALLBACK_LOGGED.putIfAbsent(line, Boolean.TRUE) == null) {
                LOG.info(line);
            }
            return Optional.empty();
        }
    }

    private static PrefillDevice openPrefill(int ordinal, ForwardModel model, int maxTokens) {
        GpuBackendProvider provider = provider();
        try {
            return provider.openPrefill(model, maxTokens, ordinal);
        } catch (NoClassDefFoundError e) {
            throw new DeviceUnavailableException("JCuda is not on the class path (" + e.getMessage() + ")");
        }
    }

    private static IllegalArgumentException gpuNeeded(DeviceUnavailableException e) {
        return new IllegalArgumentException("device gpu needs a usable CUDA device: " + e.getMessage()
                + "; device=gpu", e);
    }

    /**
     * The CUDA ordinal of a GPU address as Spark's resource scheduling hands it to an executor ({@code
     * TaskContext.resources().get("gpu").addresses()}, e.g. {@code "0"}); ordinals count the devices visible to the
     * process, as {@code CUDA_VISIBLE_DEVICES} leaves them.
     */
    public static int gpuOrdinal(String address) {
        try {
            int ordinal = Integer.parseInt(address.trim());
            if (ordinal >= 0) {
                return ordinal;
            }
        } catch (NumberFormatException | NullPointerException e) {
            // reported below
        }
        throw new IllegalArgumentException("gpu address must be a CUDA device ordinal (0, 1, ...); gpu=" + address);
    }

    /**
     * The line {@code auto} logged when it fell back to the CPU from GPU {@code ordinal} in this JVM, or null when it
     * has not (Spark executors report it; tests check it without depending on which test logged it first).
     */
    public static String fallbackLine(int ordinal) {
        return FALLBACK_LOGGED.get(ordinal);
    }

    /** Why GPU {@code ordinal} cannot be used, or null when it can (used by tests to skip GPU cases). */
    public static String gpuUnavailableReason(int ordinal) {
        try {
            gpu(ordinal);
            return null;
        } catch (DeviceUnavailableException e) {
            return e.getMessage();
        }
    }

    /** The CPU backend on {@link Kernels#preferred()}. */
    public static CpuDecodeBackend cpu() {
        CpuDecodeBackend current = cpu;
        if (current == null) {
            synchronized (Backends.class) {
                if (cpu == null) {
                    cpu = new CpuDecodeBackend(Kernels.preferred());
                }
                current = cpu;
            }
        }
        return current;
    }

    private static DecodeBackend gpu(int ordinal) {
        checkOrdinal(ordinal);
        GpuBackendProvider provider = provider();
        try {
            return provider.forDevice(ordinal);
        } catch (NoClassDefFoundError e) {
            throw new DeviceUnavailableException("JCuda is not on the class path (" + e.getMessage() + ")");
        }
    }

    private static void checkOrdinal(int ordinal) {
        if (ordinal < 0) {
            throw new IllegalArgumentException("gpu ordinal must be >= 0; gpu=" + ordinal);
        }
    }

    /** The first GPU backend registered with {@link java.util.ServiceLoader}. */
    private static GpuBackendProvider provider() {
        try {
            return java.util.ServiceLoader.load(GpuBackendProvider.class, Backends.class.getClassLoader())
                    .findFirst()
                    .orElseThrow(() -> new DeviceUnavailableException("no GPU backend is on the class path"));
        } catch (java.util.ServiceConfigurationError | NoClassDefFoundError e) {
            throw new DeviceUnavailableException("the GPU backend cannot be loaded (" + e.getMessage() + ")");
        }
    }
}
