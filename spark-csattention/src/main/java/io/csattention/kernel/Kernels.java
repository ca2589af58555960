package io.csattention.kernel;

import java.util.logging.Logger;

/**
 * Chooses the CPU kernels once per JVM: SIMD when {@code jdk.incubator.vector} is resolvable, scalar otherwise
 * or when the system property {@value #FORCE_PROPERTY} is {@code scalar}. Logs one line saying which and why.
 */
public final class Kernels {

    /** Set to {@code scalar} to force the reference loops (tests compare both paths this way). */
    public static final String FORCE_PROPERTY = "csattention.kernels";

    private static final Logger LOG = Logger.getLogger(Kernels.class.getName());
    private static final VectorKernels PREFERRED = choose();

    private Kernels() {
    }

    /** The kernels this JVM uses. */
    public static VectorKernels preferred() {
        return PREFERRED;
    }

    /** The SIMD kernels, or empty when the incubator module is not present in this JVM. */
    public static java.util.Optional<VectorKernels> simd() {
        if (ModuleLayer.boot().findModule("jdk.incubator.vector").isEmpty()) {
            return java.util.Optional.empty();
        }
        try {
            return java.util.Optional.of(new SimdKernels());
        } catch (LinkageError e) {
            return java.util.Optional.empty();
        }
    }

    private static VectorKernels choose() {
        return choose(System.getProperty(FORCE_PROPERTY, ""));
    }

    /** The choice for a value of {@value #FORCE_PROPERTY} (empty when unset); package-private for tests. */
    static VectorKernels choose(String forced) {
        if ("scalar".equalsIgnoreCase(forced.trim())) {
            LOG.info("kernels: scalar (forced by -D" + FORCE_PROPERTY + "=scalar)");
            return ScalarKernels.INSTANCE;
        }
        var simd = simd();
        if (simd.isEmpty()) {
            LOG.info("kernels: scalar (module jdk.incubator.vector not resolved; start the JVM with "
                    + "--add-modules jdk.incubator.vector for SIMD)");
            return ScalarKernels.INSTANCE;
        }
        LOG.fine("kernels: simd (jdk.incubator.vector)");
        return simd.get();
    }
}
