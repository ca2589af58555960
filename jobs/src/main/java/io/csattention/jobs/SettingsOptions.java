package io.csattention.jobs;

import io.csattention.core.CSAttentionSettings;
import io.csattention.spark.CSAttentionOptions;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The CSAttention knobs of the commands that build and decode in one JVM (eval, generate): the sparsity, the
 * {@link BuildFlags} and the {@link DecodeFlags}, turned into settings by the same mapping as the Spark jobs
 * ({@link Flags}). The index seed is the command's own {@code --seed}.
 */
public final class SettingsOptions {

    @Option(names = "--sparsity", description = "Share of keys not attended, in (0, 1) (default: ${DEFAULT-VALUE}).",
            defaultValue = "" + CSAttentionSettings.DEFAULT_SPARSITY)
    double sparsity;

    @Mixin
    BuildFlags build;

    @Mixin
    DecodeFlags decode;

    /** The settings these options describe; validation errors name the flag. */
    public CSAttentionSettings settings() {
        Map<String, String> typed = new LinkedHashMap<>();
        return Flags.parse(options(typed), typed).settings();
    }

    /** These options as CSAttention option keys (for a Spark job); {@code typed} learns which flag each was. */
    Map<String, String> options(Map<String, String> typed) {
        Map<String, String> options = new LinkedHashMap<>();
        Flags.put(options, typed, CSAttentionOptions.SPARSITY, Double.toString(sparsity), "--sparsity");
        build.into(options, typed);
        decode.into(options, typed);
        return options;
    }
}
