package io.csattention.kernel;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

class KernelsTest {

    @Test
    void propertyScalarForcesTheScalarKernels() {
        assertSame(ScalarKernels.INSTANCE, Kernels.choose("scalar"));
        assertSame(ScalarKernels.INSTANCE, Kernels.choose(" SCALAR "));
    }

    @Test
    void withoutThePropertySimdIsChosenWhenTheModuleIsPresent() {
        // the build and surefire start the JVM with --add-modules jdk.incubator.vector
        assertTrue(Kernels.simd().isPresent(), "jdk.incubator.vector must be resolved in tests");
        assertEquals("simd", Kernels.choose("").name());
        assertEquals("simd", Kernels.choose("simd").name());
    }

    @Test
    void preferredFollowsTheSystemProperty() {
        String expected = "scalar".equalsIgnoreCase(System.getProperty(Kernels.FORCE_PROPERTY, "")) ? "scalar" : "simd";
        assertEquals(expected, Kernels.preferred().name());
    }
}
