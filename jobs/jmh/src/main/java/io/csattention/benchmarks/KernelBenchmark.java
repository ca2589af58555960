package io.csattention.benchmarks;

import io.csattention.kernel.Kernels;
import io.csattention.kernel.ScalarKernels;
import io.csattention.kernel.VectorKernels;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.Blackhole;

import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

/**
 * Every {@link VectorKernels} operation, scalar against SIMD, at the lengths the method uses: 16 (one subspace of
 * d = 128 split in 8), 128 (a head) and 129 (a head with a scalar tail). Row kernels work on {@value #ROWS} rows
 * (2 MiB of keys at d = 128: L2/L3 resident, so the loops are measured rather than DRAM). Compare the two backends'
 * scores in one run: {@code java -jar benchmarks/target/csattention-benchmarks.jar -p length=128}.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--add-modules=jdk.incubator.vector")
public class KernelBenchmark {

    static final int ROWS = 4096;
    static final int SELECTED = 512;
    static final int QUERIES = 16;
    static final int TILE = 256;

    @Param({"scalar", "simd"})
    public String backend;

    @Param({"16", "128", "129"})
    public int length;

    VectorKernels kernels;
    float[] a;
    float[] b;
    float[] rows;
    float[] out;
    float[] queries;
    float[] tile;
    float[] outputs;
    float[] weights;
    int[] ids;
    byte[] codes;
    float[] codeScales;
    float[] high;

    @Setup
    public void setUp() {
        kernels = backend.equals("scalar") ? ScalarKernels.INSTANCE
                : Kernels.simd().orElseThrow(() -> new IllegalStateException("start with --add-modules "
                + "jdk.incubator.vector"));
        SplittableRandom random = new SplittableRandom(7);
        a = random(random, length);
        b = random(random, length);
        rows = random(random, ROWS * length);
        out = new float[ROWS];
        queries = random(random, QUERIES * length);
        tile = random(random, QUERIES * TILE);
        outputs = new float[QUERIES * length];
        weights = random(random, SELECTED);
        ids = random.ints(SELECTED, 0, ROWS).sorted().toArray();
        codes = new byte[ROWS * length];
        random.nextBytes(codes);
        codeScales = random(random, ROWS);
        high = random(random, ROWS * length);
    }

    private static float[] random(SplittableRandom random, int size) {
        float[] v = new float[size];
        for (int i = 0; i < size; i++) {
            v[i] = (float) (random.nextDouble() * 2 - 1);
        }
        return v;
    }

    @Benchmark
    public float dot() {
        return kernels.dot(a, 0, b, 0, length);
    }

    @Benchmark
    public float squaredDistance() {
        return kernels.squaredDistance(a, 0, b, 0, length);
    }

    @Benchmark
    public float[] dotRows() {
        kernels.dotRows(a, 0, rows, length, 0, length, 0, ROWS, out, 0);
        return out;
    }

    @Benchmark
    public float[] dotSelectedRows() {
        kernels.dotSelectedRows(a, 0, rows, length, ids, SELECTED, out);
        return out;
    }

    /** csattention's re-scoring: selected int8 rows of the key sketch. */
    @Benchmark
    public float[] dotSelectedCodes() {
        kernels.dotSelectedCodes(a, 0, codes, length, codeScales, ids, 0, SELECTED, out, 0);
        return out;
    }

    /** Quest's page bounds over {@value #ROWS} pages. */
    @Benchmark
    public float[] boundRows() {
        kernels.boundRows(a, 0, rows, high, length, 0, ROWS, out, 0);
        return out;
    }

    @Benchmark
    public float[] axpy() {
        kernels.axpy(0.5f, a, 0, b, 0, length);
        return b;
    }

    @Benchmark
    public float[] sumSelectedRows() {
        kernels.sumSelectedRows(weights, rows, length, ids, SELECTED, outputs, 0);
        return outputs;
    }

    @Benchmark
    public void expShiftedAndMax(Blackhole blackhole) {
        float max = kernels.max(weights, 0, SELECTED);
        blackhole.consume(kernels.expShifted(weights.clone(), 0, SELECTED, max));
    }

    /** The Q*K^T tile of blocked full attention: 16 queries x 256 keys. */
    @Benchmark
    public float[] dotBlock() {
        kernels.dotBlock(queries, 0, length, QUERIES, rows, length, length, 0, TILE, tile, 0, TILE);
        return tile;
    }

    /** The P*V tile of blocked full attention: 16 queries x 256 values. */
    @Benchmark
    public float[] addWeightedRows() {
        kernels.addWeightedRows(tile, 0, TILE, QUERIES, rows, length, length, 0, TILE, outputs, 0, length);
        return outputs;
    }
}
