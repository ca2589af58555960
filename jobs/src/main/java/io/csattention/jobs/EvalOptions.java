package io.csattention.jobs;

import io.csattention.baseline.AttentionMethod;
import io.csattention.core.CSAttentionSettings;
import io.csattention.device.DecodeBackend;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.util.List;

/** What {@code eval-tensors} and {@code eval-synthetic} share: methods, seed, JSON line, settings and backend. */
final class EvalOptions {

    @Option(names = "--methods", split = ",", description = "Methods to run (default: ${DEFAULT-VALUE}).",
            defaultValue = "csattention,quest,keycluster,oracle,full")
    List<String> methods;

    @Option(names = "--json", description = "Also print the summary as one JSON line last on stdout.")
    boolean json;

    @Option(names = "--seed", description = "Seed of k-means and sampling (default: ${DEFAULT-VALUE}).",
            defaultValue = "42")
    long seed;

    @Mixin
    SettingsOptions settingsOptions;

    @Mixin
    DeviceOption device;

    CSAttentionSettings settings() {
        return settingsOptions.settings().withSeed(seed);
    }

    List<AttentionMethod> methods() {
        return methods.stream().map(AttentionMethod::parse).toList();
    }

    DecodeBackend backend() {
        return device.select();
    }
}
