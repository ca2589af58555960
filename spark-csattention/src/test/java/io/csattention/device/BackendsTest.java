package io.csattention.device;

import io.csattention.kernel.Kernels;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class BackendsTest {

    @Test
    void cpuIsTheCoreOnThePreferredKernels() {
        DecodeBackend cpu = Backends.select("cpu");
        assertFalse(cpu.isGpu());
        assertEquals("cpu (" + Kernels.preferred().name() + ")", cpu.name());
        assertSame(cpu, Backends.select(" CPU "));
    }

    @Test
    void unknownModeNamesTheAcceptedOnes() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Backends.select("tpu"));
        assertEquals("device must be one of auto, cpu, gpu; device=tpu", e.getMessage());
    }

    @Test
    void sparkGpuAddressesAreOrdinals() {
        assertEquals(0, Backends.gpuOrdinal("0"));
        assertEquals(3, Backends.gpuOrdinal(" 3 "));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Backends.gpuOrdinal("GPU-1"));
        assertEquals("gpu address must be a CUDA device ordinal (0, 1, ...); gpu=GPU-1", e.getMessage());
    }

    @Test
    void negativeOrdinalIsRejected() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Backends.select("gpu", -1));
        assertEquals("gpu ordinal must be >= 0; gpu=-1", e.getMessage());
    }

    @Test
    void gpuWithoutDeviceIsAClearErrorAndAutoFallsBackWithOneLogLine() {
        String reason = Backends.gpuUnavailableReason(0);
        Assumptions.assumeTrue(reason != null, "a usable GPU is present");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Backends.select("gpu"));
        assertEquals("device gpu needs a usable CUDA device: " + reason + "; device=gpu", e.getMessage());
        assertFalse(reason.isBlank());
        assertFalse(reason.contains("\n"), "the reason is one line: " + reason);

        try (CapturedLog log = CapturedLog.of(Backends.class)) {
            int ordinal = 7;  // an ordinal no other test used, so this JVM has not logged its fallback yet
            String reasonHere = Backends.gpuUnavailableReason(ordinal);
            DecodeBackend first = Backends.select("auto", ordinal);
            DecodeBackend second = Backends.select("AUTO", ordinal);
            assertFalse(first.isGpu());
            assertSame(Backends.cpu(), first);
            assertSame(first, second);
            assertEquals(List.of("device: cpu (auto fell back from gpu 7: " + reasonHere + ")"), log.lines());
        }
    }

    @Test
    void withoutDriverLibraryTheReasonSaysSo() {
        String reason = Backends.gpuUnavailableReason(0);
        Assumptions.assumeTrue(reason != null && reason.startsWith("no CUDA driver library"),
                "this machine has a CUDA driver library");
        assertTrue(reason.matches("no CUDA driver library \\(libcuda\\.so\\.1: .+\\)"), reason);
    }
}
