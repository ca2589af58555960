package io.csattention.spark;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class CSAttentionOptionsTest {

    @Test
    void defaultsConfDocumentsEveryKeyWithItsDefault() throws IOException {
        Map<String, String> documented = new LinkedHashMap<>();
        for (String line : Files.readAllLines(Path.of("../conf/csattention-defaults.conf"))) {
            if (line.startsWith(CSAttentionOptions.CONF_PREFIX)) {
                String[] kv = line.split("\\s+", 2);
                documented.put(kv[0].substring(CSAttentionOptions.CONF_PREFIX.length()), kv[1].trim());
            }
        }
        assertEquals(new java.util.TreeSet<>(CSAttentionOptions.KEYS), new java.util.TreeSet<>(documented.keySet()));
        assertEquals(CSAttentionOptions.defaults(), CSAttentionOptions.parse(documented));
    }

    @Test
    void keysAreCaseInsensitiveAndSizesTakeSuffixes() {
        CSAttentionOptions o = CSAttentionOptions.parse(Map.of("SPARSITY", "0.8", "cachebudget", "512m",
                "broadcastThreshold", "2g", "distance", "l2", "missingScore", "mean-below-floor"));
        assertEquals(0.8, o.settings().sparsity());
        assertEquals(512L << 20, o.cacheBudgetBytes());
        assertEquals(2L << 30, o.broadcastThreshold());
        assertEquals(io.csattention.core.CentroidDistance.L2, o.settings().distance());
        assertEquals(io.csattention.core.MissingScore.MEAN_BELOW_FLOOR, o.settings().missingScore());
    }

    @Test
    void deviceDefaultsToCpuAndTakesAutoAndGpu() {
        assertEquals(io.csattention.device.Backends.Mode.CPU, CSAttentionOptions.defaults().device());
        assertEquals(io.csattention.device.Backends.Mode.AUTO,
                CSAttentionOptions.parse(Map.of("Device", " Auto ")).device());
        assertEquals(io.csattention.device.Backends.Mode.GPU, CSAttentionOptions.parse(Map.of("device", "gpu")).device());
    }

    @Test
    void badValuesFailWithOneLine() {
        assertEquals("kernels must be one of auto, simd, scalar; kernels=gpu", assertThrows(
                IllegalArgumentException.class, () -> CSAttentionOptions.parse(Map.of("kernels", "gpu")))
                .getMessage());
        assertEquals("onError must be fail or route; onError=skip", assertThrows(IllegalArgumentException.class,
                () -> CSAttentionOptions.parse(Map.of("onError", "skip"))).getMessage());
        assertEquals("blockSize must be > 0; blockSize=0", assertThrows(IllegalArgumentException.class,
                () -> CSAttentionOptions.parse(Map.of("blockSize", "0"))).getMessage());
        assertEquals("device must be one of auto, cpu, gpu; device=tpu", assertThrows(IllegalArgumentException.class,
                () -> CSAttentionOptions.parse(Map.of("device", "tpu"))).getMessage());
        assertEquals("subspaces must be an integer; subspaces=four", assertThrows(IllegalArgumentException.class,
                () -> CSAttentionOptions.parse(Map.of("subspaces", "four"))).getMessage());
    }
}
