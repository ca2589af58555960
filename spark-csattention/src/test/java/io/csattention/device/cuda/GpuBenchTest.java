package io.csattention.device.cuda;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The crossover the timing table reports, from given times (no device needed). */
class GpuBenchTest {

    private static GpuBench.GpuTimes withGemm(double sparseKernelUs, double... gemmKernelUs) {
        int[] batches = {1, 8, 64, 512};
        List<GpuBench.GemmTimes> gemm = new java.util.ArrayList<>();
        for (int i = 0; i < gemmKernelUs.length; i++) {
            gemm.add(new GpuBench.GemmTimes(batches[i], new GpuBench.Micros(100, gemmKernelUs[i]), 0));
        }
        return new GpuBench.GpuTimes(1, new GpuBench.Micros(100, sparseKernelUs), null, null, gemm, null, null, null,
                null, null, null);
    }

    @Test
    void theCrossoverIsTheSmallestBatchWhoseGemmTakesLessKernelTime() {
        assertEquals(64, withGemm(5.0, 200, 20, 4.9, 3).crossoverBatch());
        // a wall-clock win does not count, nor a tie
        assertEquals(512, withGemm(5.0, 200, 20, 5.0, 3).crossoverBatch());
    }

    @Test
    void noCrossoverWhenTheGemmNeverWins() {
        assertEquals(-1, withGemm(5.0, 200, 20, 9, 6).crossoverBatch());
    }
}
