package io.csattention.kernel;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/** {@link FmaPeak}'s loop, in a class of its own so that a JVM without the Vector API never loads it. */
final class SimdPeak {

    private static final VectorSpecies<Float> F256 = FloatVector.SPECIES_256;
    private static final int CHAINS = 10;
    private static final long ITERATIONS = 30_000_000L;
    /** What the timed loops computed, kept so that they are not optimized away. */
    private static volatile float sink;

    private SimdPeak() {
    }

    static double measure(int threads) {
        for (int i = 0; i < 20; i++) {
            sink += chains(100_000); // compiled before the timed runs, on its own
        }
        double best = Double.MAX_VALUE;
        for (int repeat = 0; repeat < 3; repeat++) {
            Thread[] workers = new Thread[threads];
            float[] results = new float[threads];
            long start = System.nanoTime();
            for (int t = 0; t < threads; t++) {
                int slot = t;
                workers[t] = new Thread(() -> results[slot] = chains(ITERATIONS), "fma-peak-" + t);
                workers[t].start();
            }
            for (Thread w : workers) {
                try {
                    w.join();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IllegalStateException("interrupted while measuring the FMA peak", e);
                }
            }
            best = Math.min(best, (System.nanoTime() - start) / 1e9);
            for (float r : results) {
                sink += r;
            }
        }
        return (double) threads * ITERATIONS * CHAINS * F256.length() / best;
    }

    /** Ten independent multiply-add chains of 8 lanes, {@code iterations} steps each. */
    private static float chains(long iterations) {
        FloatVector a0 = FloatVector.broadcast(F256, 0.1f);
        FloatVector a1 = FloatVector.broadcast(F256, 0.2f);
        FloatVector a2 = FloatVector.broadcast(F256, 0.3f);
        FloatVector a3 = FloatVector.broadcast(F256, 0.4f);
        FloatVector a4 = FloatVector.broadcast(F256, 0.5f);
        FloatVector a5 = FloatVector.broadcast(F256, 0.6f);
        FloatVector a6 = FloatVector.broadcast(F256, 0.7f);
        FloatVector a7 = FloatVector.broadcast(F256, 0.8f);
        FloatVector a8 = FloatVector.broadcast(F256, 0.9f);
        FloatVector a9 = FloatVector.broadcast(F256, 1.0f);
        FloatVector m = FloatVector.broadcast(F256, 0.999999f);
        FloatVector c = FloatVector.broadcast(F256, 1e-7f);
        for (long i = 0; i < iterations; i++) {
            a0 = a0.fma(m, c);
            a1 = a1.fma(m, c);
            a2 = a2.fma(m, c);
            a3 = a3.fma(m, c);
            a4 = a4.fma(m, c);
            a5 = a5.fma(m, c);
            a6 = a6.fma(m, c);
            a7 = a7.fma(m, c);
            a8 = a8.fma(m, c);
            a9 = a9.fma(m, c);
        }
        return a0.add(a1).add(a2).add(a3).add(a4).add(a5).add(a6).add(a7).add(a8).add(a9)
                .reduceLanes(VectorOperators.ADD);
    }
}
