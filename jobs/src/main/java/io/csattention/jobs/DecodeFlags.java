package io.csattention.jobs;

import io.csattention.core.BudgetPlan;
import io.csattention.core.CSAttentionSettings;
import io.csattention.spark.CSAttentionOptions;
import picocli.CommandLine.Option;

import java.util.Map;

/** The decode-time settings as flags, for every command that decodes ({@code @Mixin DecodeFlags decode;}). */
public final class DecodeFlags {

    @Option(names = "--sink", description = "Leading keys always attended (default: min("
            + BudgetPlan.DEFAULT_SINK_CAP + ", budget/8)).")
    String sink;

    @Option(names = "--window", description = "Trailing keys always attended (default: min("
            + BudgetPlan.DEFAULT_WINDOW_CAP + ", budget/8)).")
    String window;

    @Option(names = "--rescore-factor", description = "Candidates re-scored with q . k (over the int8 key sketch), "
            + "as a multiple of the chosen keys: 0 (the literal method) or >= 1 (default: "
            + CSAttentionSettings.DEFAULT_RESCORE_FACTOR + ").")
    String rescoreFactor;

    /** Puts the given flags into {@code options} under their keys and records in {@code typed} which flag each was. */
    void into(Map<String, String> options, Map<String, String> typed) {
        Flags.put(options, typed, CSAttentionOptions.SINK, sink, "--sink");
        Flags.put(options, typed, CSAttentionOptions.WINDOW, window, "--window");
        Flags.put(options, typed, CSAttentionOptions.RESCORE_FACTOR, rescoreFactor, "--rescore-factor");
    }
}
