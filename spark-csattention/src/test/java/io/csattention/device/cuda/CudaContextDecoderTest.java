package io.csattention.device.cuda;

import io.csattention.core.CSAttentionIndex;
import io.csattention.core.CSAttentionSettings;
import io.csattention.core.FloatMatrix;
import io.csattention.core.PackedLists;
import io.csattention.core.Rope;
import io.csattention.core.RopeInfo;
import io.csattention.core.TestData;
import io.csattention.kernel.Kernels;
import org.junit.jupiter.api.Test;

import java.util.stream.LongStream;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** What the GPU decoder checks of an index before it uploads anything (no device needed). */
class CudaContextDecoderTest {

    private static final long SEED = 17L;

    @Test
    void anIndexWithRopeInformationIsRefused() {
        System.out.println("CudaContextDecoderTest seed=" + SEED);
        FloatMatrix keys = TestData.gaussian(513, 32, SEED);
        FloatMatrix prefill = TestData.gaussian(64, 32, SEED + 1);
        CSAttentionSettings settings = CSAttentionSettings.defaults().withCentroids(8);
        RopeInfo rope = new RopeInfo(10_000, Rope.Style.HALF, LongStream.range(449, 513).toArray(), 513,
                RopeInfo.DEFAULT_DECODE_SPAN);
        CSAttentionIndex withRope = CSAttentionIndex.build(Kernels.preferred(), keys, prefill, settings, rope);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> CudaContextDecoder.checkIndex(withRope));
        assertEquals("the GPU decoder takes an index built without RoPE information (the CPU decoder de-rotates its "
                + "slow bands); index.rope=set", e.getMessage());
        CSAttentionIndex plain = CSAttentionIndex.build(Kernels.preferred(), keys, prefill, settings);
        assertDoesNotThrow(() -> CudaContextDecoder.checkIndex(plain));
        assertDoesNotThrow(() -> CudaContextDecoder.checkIndex(null));
    }

    @Test
    void theKernelsBlockOfKeysIsThePackedListsBlock() {
        assertEquals(PackedLists.BLOCK_BITS, PtxFunction.PACKED_BLOCK_BITS);
    }
}
