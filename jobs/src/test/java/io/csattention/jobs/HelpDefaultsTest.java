package io.csattention.jobs;

import io.csattention.core.BudgetPlan;
import io.csattention.core.CSAttentionSettings;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.lang.reflect.Field;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Defaults are written once: an option that has a picocli default shows it with {@code ${DEFAULT-VALUE}} instead of
 * retyping it, and the help of the settings flags shows the core's constants.
 */
class HelpDefaultsTest {

    @Test
    void everyOptionWithADefaultShowsItThroughDefaultValue() {
        List<String> retyped = new ArrayList<>();
        for (Class<?> command : Main.class.getAnnotation(Command.class).subcommands()) {
            collect(command, retyped);
        }
        assertEquals(List.of(), retyped);
    }

    /** Options of {@code type} and of its mixins that have a default and mention it without the variable. */
    private static void collect(Class<?> type, List<String> retyped) {
        for (Field field : type.getDeclaredFields()) {
            Option option = field.getAnnotation(Option.class);
            if (option != null && !option.defaultValue().equals(CommandLine.Option.NULL_VALUE)
                    && !option.defaultValue().equals("__no_default_value__")) {
                String description = String.join(" ", option.description());
                if (description.toLowerCase(java.util.Locale.ROOT).contains("default")
                        && !description.contains("${DEFAULT-VALUE}")) {
                    retyped.add(type.getSimpleName() + " " + option.names()[0] + ": " + description);
                }
            }
            if (field.getAnnotation(Mixin.class) != null || field.getAnnotation(CommandLine.ArgGroup.class) != null) {
                collect(field.getType(), retyped);
            }
        }
        for (Class<?> nested : type.getDeclaredClasses()) {
            collect(nested, retyped);
        }
    }

    @Test
    void buildAndDecodeFlagsShowTheCoreDefaults() {
        StringWriter out = new StringWriter();
        int code = Main.run(new String[] {"eval-synthetic", "--help"}, new PrintWriter(out, true),
                new PrintWriter(new StringWriter(), true));
        assertEquals(0, code);
        String help = out.toString().replaceAll("\\s+", " ");
        assertTrue(help.contains("(default: " + CSAttentionSettings.DEFAULT_CENTROIDS + ", at most the prefill "
                + "queries)"), help);
        assertTrue(help.contains("(default: " + CSAttentionSettings.DEFAULT_KMEANS_ITERATIONS + ")"), help);
        assertTrue(help.contains("(default: min(" + BudgetPlan.DEFAULT_SINK_CAP + ", budget/8))"), help);
        assertTrue(help.contains("(default: min(" + BudgetPlan.DEFAULT_WINDOW_CAP + ", budget/8))"), help);
        assertTrue(help.contains("(default: " + CSAttentionSettings.DEFAULT_SPARSITY + ")"), help);
    }
}
