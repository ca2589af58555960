package io.csattention.core;

import io.csattention.kernel.ScalarKernels;
import io.csattention.kernel.VectorKernels;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The fixture the CUDA emulator holds the decode kernels to ({@code kernels/emulator/fixtures/decode-cpu-selector.txt},
 * read by {@code check_kernels.cpp}): for seeded contexts, the decode data as the GPU decoder uploads it (queries,
 * centroids, {@link PackedLists}, {@link KeySketch}) and the selection {@link CSAttentionSelector} makes of it, on the
 * scalar kernels so that every machine writes the same bytes. This test fails when today's CPU selector no longer gives
 * the committed file; regenerate it with {@code -Dcsattention.writeFixtures=true} (and rerun the emulator).
 *
 * <p>Format: text, one record per line, {@code name value...}; floats as the decimal of their raw int bits.
 */
class GpuDecodeFixtureTest {

    static final long SEED = 20261202L;
    private static final VectorKernels KERNELS = ScalarKernels.INSTANCE;
    private static final String FIXTURE = "kernels/emulator/fixtures/decode-cpu-selector.txt";

    @Test
    void theCommittedFixtureIsWhatTheCpuSelectorGivesToday() throws IOException {
        System.out.println("GpuDecodeFixtureTest seed=" + SEED);
        StringBuilder text = new StringBuilder();
        CSAttentionSettings base = CSAttentionSettings.defaults().withSparsity(0.9).withCentroids(16)
                .withListFraction(0.08).withSeed(SEED);
        write(text, "l2-rescored", 601, 16, 11, base, SEED);
        write(text, "inner-product-literal", 601, 16, 7, base.withDistance(CentroidDistance.INNER_PRODUCT)
                .withRescoreFactor(0), SEED + 1);
        Path path = locate();
        if (Boolean.getBoolean("csattention.writeFixtures")) {
            Files.writeString(path, text);
        }
        List<String> want = Files.readAllLines(path);
        List<String> got = text.toString().lines().toList();
        for (int i = 0; i < Math.min(want.size(), got.size()); i++) {
            assertEquals(want.get(i), got.get(i), FIXTURE + " line " + (i + 1) + " is stale; regenerate with "
                    + "-Dcsattention.writeFixtures=true");
        }
        assertEquals(want.size(), got.size(), FIXTURE + " lines");
    }

    private static void write(StringBuilder out, String name, int n, int d, int queryCount,
                              CSAttentionSettings settings, long seed) {
        FloatMatrix keys = TestData.gaussian(n, d, seed);
        FloatMatrix values = TestData.gaussian(n, d, seed + 1);
        FloatMatrix prefill = TestData.gaussian(151, d, seed + 2);
        SplittableRandom random = new SplittableRandom(seed + 3);
        float[] queries = new float[queryCount * d];
        for (int q = 0; q < queryCount; q++) {
            int near = random.nextInt(n);
            for (int t = 0; t < d; t++) {
                queries[q * d + t] = 1.5f * keys.data()[near * d + t] + (float) (0.5 * random.nextGaussian());
            }
        }
        KeyValueCache cache = KeyValueCache.of(keys, values);
        CSAttentionIndex index = CSAttentionIndex.build(KERNELS, keys, prefill, settings);
        PackedLists packed = PackedLists.of(index);
        KeySketch sketch = KeySketch.of(cache);
        CSAttentionSelector selector = new CSAttentionSelector(KERNELS, index, cache, settings.rescoreFactor());
        BudgetPlan plan = settings.plan(n);
        int chosen = plan.chosen();
        int wanted = settings.rescoreFactor() > 0 ? (int) Math.min(plan.middleEnd() - plan.middleStart(),
                Math.ceil(settings.rescoreFactor() * chosen)) : chosen;
        out.append("case ").append(name).append('\n');
        ints(out, "shape", n, d, index.subspaces(), index.centroidCount(), index.listLength(),
                index.distance() == CentroidDistance.L2 ? 1 : 0, plan.budget(), plan.sink(), plan.window(), chosen,
                wanted, queryCount, packed.blocks());
        floats(out, "queries", queries);
        floats(out, "centroids", index.centroids());
        ints(out, "starts", packed.starts());
        int[] offsets = new int[packed.offsets().length];
        for (int i = 0; i < offsets.length; i++) {
            offsets[i] = packed.offsets()[i];
        }
        ints(out, "offsets", offsets);
        int[] units = new int[packed.units().length];
        for (int i = 0; i < units.length; i++) {
            units[i] = packed.units()[i];
        }
        ints(out, "units", units);
        int[] codes = new int[n * d];
        for (int i = 0; i < codes.length; i++) {
            codes[i] = sketch.codes()[i];
        }
        ints(out, "codes", codes);
        floats(out, "scales", java.util.Arrays.copyOf(sketch.scales(), n));
        int[] selected = new int[queryCount * plan.budget()];
        for (int q = 0; q < queryCount; q++) {
            System.arraycopy(selector.select(queries, q * d, plan), 0, selected, q * plan.budget(), plan.budget());
        }
        ints(out, "selected", selected);
    }

    private static void ints(StringBuilder out, String name, int... values) {
        out.append(name).append(' ').append(values.length);
        for (int v : values) {
            out.append(' ').append(v);
        }
        out.append('\n');
    }

    private static void floats(StringBuilder out, String name, float[] values) {
        int[] bits = new int[values.length];
        for (int i = 0; i < values.length; i++) {
            bits[i] = Float.floatToRawIntBits(values[i]);
        }
        ints(out, name, bits);
    }

    /** The fixture in the repository, found from the module's directory or the repository root. */
    private static Path locate() {
        for (Path dir = Path.of("").toAbsolutePath(); dir != null; dir = dir.getParent()) {
            if (Files.isDirectory(dir.resolve("kernels/emulator"))) {
                return dir.resolve(FIXTURE);
            }
        }
        throw new IllegalStateException("no kernels/emulator above " + Path.of("").toAbsolutePath());
    }
}
