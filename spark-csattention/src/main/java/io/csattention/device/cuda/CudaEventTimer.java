package io.csattention.device.cuda;

import jcuda.driver.CUevent;
import jcuda.driver.JCudaDriver;

/**
 * Device time of the work a stream does between {@link #start} and {@link #stop}, by two CUDA events, summed over
 * intervals: {@link #collect} after the stream's synchronisation adds the last interval, {@link #take} returns the sum
 * and clears it. Wall time around a call would also count the host copies and the launch overhead.
 */
final class CudaEventTimer implements AutoCloseable {

    private final CudaStream stream;
    private final CUevent begin = new CUevent();
    private final CUevent end = new CUevent();
    private final float[] elapsed = new float[1];
    private boolean running;
    private double millis;

    CudaEventTimer(CudaStream stream) {
        this.stream = stream;
        Cuda.check(JCudaDriver.cuEventCreate(begin, 0), "cuEventCreate");
        Cuda.check(JCudaDriver.cuEventCreate(end, 0), "cuEventCreate");
    }

    void start() {
        Cuda.check(JCudaDriver.cuEventRecord(begin, stream.handle()), "cuEventRecord");
    }

    void stop() {
        Cuda.check(JCudaDriver.cuEventRecord(end, stream.handle()), "cuEventRecord");
        running = true;
    }

    /** Adds the interval just stopped; call once the stream has passed {@link #stop}. */
    void collect() {
        if (!running) {
            return;
        }
        Cuda.check(JCudaDriver.cuEventSynchronize(end), "cuEventSynchronize");
        Cuda.check(JCudaDriver.cuEventElapsedTime(elapsed, begin, end), "cuEventElapsedTime");
        millis += elapsed[0];
        running = false;
    }

    double take() {
        double total = millis;
        millis = 0;
        return total;
    }

    @Override
    public void close() {
        JCudaDriver.cuEventDestroy(begin);
        JCudaDriver.cuEventDestroy(end);
    }
}
