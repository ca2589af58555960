package io.csattention.kernel;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The SIMD kernels give bit-identical results compiled (this JVM, after a warm-up) and interpreted (a child JVM with
 * {@code -Xint}): a retried Spark task on a cold executor must decode to the same output as the first try.
 */
class KernelDeterminismTest {

    static final long SEED = 20261129L;
    static final int D = 131;
    static final int ROWS = 37;

    /** The kernels' results on fixed data, as float bits, one per line. */
    static List<String> results(VectorKernels kernels) {
        SplittableRandom random = new SplittableRandom(SEED);
        float[] x = KernelContractTest.random(random, D);
        float[] rows = KernelContractTest.random(random, ROWS * D);
        byte[] codes = new byte[ROWS * D];
        random.nextBytes(codes);
        float[] scales = KernelContractTest.random(random, ROWS);
        int[] ids = random.ints(13, 0, ROWS).toArray();
        List<String> out = new ArrayList<>();
        out.add(bits(kernels.dot(x, 0, rows, D, D)));
        out.add(bits(kernels.squaredDistance(x, 0, rows, 2 * D, D)));
        float[] selected = new float[ids.length];
        kernels.dotSelectedRows(x, 0, rows, D, ids, ids.length, selected);
        for (float v : selected) {
            out.add(bits(v));
        }
        kernels.dotSelectedCodes(x, 0, codes, D, scales, ids, 0, ids.length, selected, 0);
        for (float v : selected) {
            out.add(bits(v));
        }
        float[] sums = new float[D];
        kernels.sumSelectedRows(scales, rows, D, ids, ids.length, sums, 0);
        for (float v : sums) {
            out.add(bits(v));
        }
        float[] bounds = new float[ROWS / 2];
        kernels.boundRows(x, 0, rows, rows, D, ROWS / 2, ROWS / 2, bounds, 0);
        for (float v : bounds) {
            out.add(bits(v));
        }
        float[] exps = KernelContractTest.random(random, 3 * D);
        out.add(bits(kernels.expShifted(exps, 0, exps.length, 0.25f)));
        for (float v : exps) {
            out.add(bits(v));
        }
        return out;
    }

    private static String bits(float v) {
        return Integer.toHexString(Float.floatToRawIntBits(v));
    }

    @Test
    void compiledAndInterpretedKernelsAgreeBitForBit() throws IOException, InterruptedException {
        Assumptions.assumeTrue(Kernels.simd().isPresent(), "SIMD kernels need --add-modules jdk.incubator.vector");
        VectorKernels simd = Kernels.simd().orElseThrow();
        List<String> compiled = null;
        for (int i = 0; i < 20_000; i++) { // enough calls for C2 to compile the loops
            compiled = results(simd);
        }
        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        Process child = new ProcessBuilder(java.toString(), "-Xint", "--add-modules", "jdk.incubator.vector",
                "-cp", System.getProperty("java.class.path"), Main.class.getName())
                .redirectErrorStream(false).start();
        String output = new String(child.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(child.waitFor(120, TimeUnit.SECONDS), "interpreted child did not finish");
        assertEquals(0, child.exitValue(), "interpreted child failed: "
                + new String(child.getErrorStream().readAllBytes(), StandardCharsets.UTF_8));
        assertEquals(String.join("\n", compiled), output.strip(), "seed " + SEED);
    }

    /** The child: prints the interpreted results. */
    public static final class Main {
        public static void main(String[] args) {
            System.out.println(String.join("\n", results(Kernels.simd().orElseThrow())));
        }
    }
}
