package io.csattention.kernel;

import java.util.OptionalDouble;

/**
 * The machine's fused multiply-add throughput as the SIMD kernels can use it: 256-bit float vectors (the widest the
 * kernels use), ten independent chains per thread held in registers (no memory, no dependency stalls), on
 * {@code threads} threads at once; the best of three timings. It is the ceiling a compute-bound product could reach
 * on this machine, which benchmarks print next to what their products reach (a ratio measured in the same run, not a
 * number from a data sheet).
 */
public final class FmaPeak {

    private FmaPeak() {
    }

    /**
     * Multiply-adds per second (one multiply-add counted once) of {@code threads} threads together, or empty when
     * the Vector API is not in this JVM (the kernels are then scalar).
     */
    public static OptionalDouble macsPerSecond(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("an FMA peak needs at least one thread; threads=" + threads);
        }
        if (Kernels.simd().isEmpty()) {
            return OptionalDouble.empty();
        }
        return OptionalDouble.of(SimdPeak.measure(threads));
    }
}
