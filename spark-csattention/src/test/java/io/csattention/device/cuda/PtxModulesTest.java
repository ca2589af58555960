package io.csattention.device.cuda;

import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The packaged PTX holds every kernel the backend launches, and records what it needs from the driver. */
class PtxModulesTest {

    @Test
    void everyKernelIsAnEntryOfItsModule() {
        PtxModules ptx = PtxModules.load();
        assertEquals(java.util.List.of("attention", "decode", "forward", "prefill"), ptx.modules());
        for (PtxFunction kernel : PtxFunction.values()) {
            String text = new String(ptx.ptx(kernel.module()), StandardCharsets.US_ASCII);
            assertTrue(text.contains(".entry " + kernel.function() + "("),
                    kernel.function() + " must be an entry of " + kernel.module() + ".ptx");
        }
    }

    @Test
    void recordsIsaAndMinimumDriver() {
        PtxModules ptx = PtxModules.load();
        assertTrue(ptx.isa().matches("\\d+\\.\\d+"), ptx.isa());
        assertTrue(ptx.target().startsWith("sm_"), ptx.target());
        assertTrue(ptx.minimumDriverVersion() >= 11000, "driver.minimum=" + ptx.minimumDriverVersion());
        String text = new String(ptx.ptx("decode"), StandardCharsets.US_ASCII);
        assertTrue(text.contains(".version " + ptx.isa()), "decode.ptx must declare ISA " + ptx.isa());
    }

    @Test
    void driverTooOldNamesBothVersions() {
        PtxModules ptx = PtxModules.load();
        assertEquals("CUDA driver too old for the PTX: the driver supports CUDA 12.4, the PTX (ISA " + ptx.isa()
                + ") needs CUDA " + PtxModules.cudaVersion(ptx.minimumDriverVersion()) + " (Linux driver "
                + ptx.minimumLinuxDriver() + " or newer)", CudaDevice.driverTooOld(12040, ptx));
    }

    @Test
    void linkFailureIsReducedToTheMissingLibrary() {
        UnsatisfiedLinkError error = new UnsatisfiedLinkError("Error while loading native library \"JCudaDriver\"\n"
                + "Stack trace from the attempt to load the library as a resource:\n"
                + "java.lang.UnsatisfiedLinkError: /tmp/libJCudaDriver-12.6.0-linux-x86_64.so: libcuda.so.1: cannot "
                + "open shared object file: No such file or directory\n\tat x.y(Z.java:1)");
        assertEquals("no CUDA driver library (libcuda.so.1: cannot open shared object file: No such file or "
                + "directory)", CudaDevice.describeLinkFailure(error));
    }
}
