package io.csattention.device;

import io.csattention.core.CSAttentionIndex;
import io.csattention.core.CSAttentionSettings;
import io.csattention.core.KeySketch;
import io.csattention.device.DecodeBackendContractTest.Context;
import io.csattention.kernel.Kernels;
import io.csattention.kernel.VectorKernels;
import org.junit.jupiter.api.Test;
import org.opentest4j.AssertionFailedError;

import java.util.Arrays;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The GPU contract ({@link GpuAgreement}) tried where no GPU runs: it holds the Java restatement of the decode kernels
 * ({@link GpuDecodeModel}) to the CPU selection on every GPU case of {@link DecodeBackendContractTest}, accepts the
 * CPU backend's own decode with no difference at all, and rejects a selection that differs away from a near-tie.
 */
class GpuAgreementTest {

    private static final VectorKernels KERNELS = Kernels.preferred();

    private record Case(String name, Context context, CSAttentionSettings settings) {
    }

    private static Case[] contractCases() {
        Context settingsContext = DecodeBackendContractTest.settingsContext();
        CSAttentionSettings[] variants = DecodeBackendContractTest.settingsVariants();
        Case[] cases = new Case[variants.length + 2];
        cases[0] = new Case("odd sizes", DecodeBackendContractTest.oddSizesContext(),
                DecodeBackendContractTest.settings());
        for (int v = 0; v < variants.length; v++) {
            cases[v + 1] = new Case("settings " + v, settingsContext, variants[v]);
        }
        cases[variants.length + 1] = new Case("sink and window", DecodeBackendContractTest.sinkAndWindowContext(),
                DecodeBackendContractTest.sinkAndWindowSettings());
        return cases;
    }

    private static CSAttentionIndex index(Case c) {
        return CSAttentionIndex.build(KERNELS, c.context().cache().keyMatrix(), c.context().prefillQueries(),
                c.settings());
    }

    @Test
    void theKernelsRestatedSelectLikeTheCpuOnEveryGpuCase() {
        int nearTies = 0;
        for (Case c : contractCases()) {
            CSAttentionIndex index = index(c);
            DecodedBlock model = GpuDecodeModel.decode(KERNELS, c.context().cache(), index, c.settings(),
                    c.context().queries());
            DecodedBlock cpu = DecodeBackendContractTest.reference(c.context(), index, c.settings());
            int here = GpuAgreement.assertSelectsLikeCpu(c.context().cache(), index, c.settings(),
                    c.context().queries(), cpu, model, c.name());
            System.out.println("restated GPU kernels, " + c.name() + ": " + here + " keys differ at near-ties");
            nearTies += here;
        }
        System.out.println("restated GPU kernels: " + nearTies + " selected keys differ from the CPU's in all");
    }

    @Test
    void theCpuBackendPassesWithNoDifference() {
        for (Case c : contractCases()) {
            CSAttentionIndex index = index(c);
            try (ContextDecoder decoder = Backends.cpu().open(c.context().cache(), index, c.settings())) {
                assertEquals(0, GpuAgreement.assertSelectsLikeCpu(c.context().cache(), index, c.settings(),
                        c.context().queries(), DecodeBackendContractTest.reference(c.context(), index, c.settings()),
                        decoder.decode(c.context().queries()), c.name()), c.name());
            }
        }
    }

    @Test
    void aKeyFarAboveTheCutMissingFails() {
        Case c = contractCases()[0];
        CSAttentionIndex index = index(c);
        DecodedBlock cpu = DecodeBackendContractTest.reference(c.context(), index, c.settings());
        KeySketch sketch = KeySketch.of(c.context().cache());
        float[] queries = c.context().queries().data();
        int[] row = cpu.selected(0);
        var plan = cpu.plan();
        int[] middle = Arrays.stream(row).filter(id -> id >= plan.middleStart() && id < plan.middleEnd()).toArray();
        int best = Arrays.stream(middle).boxed().max((a, b) -> Double.compare(
                GpuAgreement.sketchScore(queries, 0, sketch, a), GpuAgreement.sketchScore(queries, 0, sketch, b)))
                .orElseThrow();
        int worst = IntStream.range(plan.middleStart(), plan.middleEnd())
                .filter(id -> Arrays.binarySearch(middle, id) < 0).boxed()
                .min((a, b) -> Double.compare(GpuAgreement.sketchScore(queries, 0, sketch, a),
                        GpuAgreement.sketchScore(queries, 0, sketch, b))).orElseThrow();
        int[] selected = cpu.selected().clone();
        for (int i = 0; i < plan.budget(); i++) {
            selected[i] = selected[i] == best ? worst : selected[i];
        }
        Arrays.sort(selected, 0, plan.budget());
        DecodedBlock swapped = new DecodedBlock(plan, selected, cpu.outputs());
        AssertionFailedError e = assertThrows(AssertionFailedError.class, () -> GpuAgreement.assertSelectsLikeCpu(
                c.context().cache(), index, c.settings(), c.context().queries(), cpu, swapped, "swapped"));
        assertTrue(e.getMessage().startsWith("swapped: query 0 key " + Math.min(best, worst)
                + " differs from the CPU selection and is not a near-tie of the re-scoring cut"), e.getMessage());
    }

    @Test
    void aLiteralSelectionThatDiffersFails() {
        Case c = contractCases()[1];
        assertEquals(0.0, c.settings().rescoreFactor());
        CSAttentionIndex index = index(c);
        DecodedBlock cpu = DecodeBackendContractTest.reference(c.context(), index, c.settings());
        var plan = cpu.plan();
        int[] row = cpu.selected(0);
        int dropped = row[plan.sink()];
        int added = IntStream.range(plan.middleStart(), plan.middleEnd()).filter(id -> Arrays.stream(row)
                .noneMatch(k -> k == id)).findFirst().orElseThrow();
        int[] selected = cpu.selected().clone();
        selected[plan.sink()] = added;
        Arrays.sort(selected, 0, plan.budget());
        DecodedBlock changed = new DecodedBlock(plan, selected, cpu.outputs());
        AssertionFailedError e = assertThrows(AssertionFailedError.class, () -> GpuAgreement.assertSelectsLikeCpu(
                c.context().cache(), index, c.settings(), c.context().queries(), cpu, changed, "literal"));
        assertEquals("literal: query 0 selects [" + Math.min(added, dropped) + ", " + Math.max(added, dropped)
                + "] unlike the CPU without a re-scoring step or a centroid near-tie ==> expected: <true> but was: "
                + "<false>", e.getMessage());
    }
}
