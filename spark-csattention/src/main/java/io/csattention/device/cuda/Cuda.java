package io.csattention.device.cuda;

import jcuda.driver.CUresult;

/** Checks driver API results: every failure names the call (and the kernel, for launches and syncs). */
final class Cuda {

    private Cuda() {
    }

    static void check(int result, String call) {
        if (result != CUresult.CUDA_SUCCESS) {
            throw new IllegalStateException(call + " failed: " + CUresult.stringFor(result));
        }
    }

    static int blocks(long items, int perBlock) {
        long blocks = (items + perBlock - 1) / perBlock;
        if (blocks > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("grid must have at most 2^31-1 blocks; blocks=" + blocks);
        }
        return (int) Math.max(1, blocks);
    }
}
