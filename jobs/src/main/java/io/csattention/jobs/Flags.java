package io.csattention.jobs;

import io.csattention.spark.CSAttentionOptions;

import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The one mapping from command-line flags to settings: flags become {@link CSAttentionOptions} keys, and
 * {@link CSAttentionOptions#parse} turns keys into settings for every command, Spark or not. Errors name the flag the
 * user typed ({@code --list-fraction}), not the key behind it ({@code listFraction}).
 */
final class Flags {

    private Flags() {
    }

    /** Puts {@code value} under {@code key} when given, remembering that the user typed it as {@code flag}. */
    static void put(Map<String, String> options, Map<String, String> typed, String key, String value, String flag) {
        if (value != null) {
            options.put(key, value);
            typed.put(key, flag);
        }
    }

    /** {@link CSAttentionOptions#parse} of {@code options}, with errors in the user's flags. */
    static CSAttentionOptions parse(Map<String, String> options, Map<String, String> typed) {
        try {
            return CSAttentionOptions.parse(options);
        } catch (IllegalArgumentException e) {
            throw named(e, typed);
        }
    }

    /** {@code e} with the option keys the user typed as flags replaced by those flags. */
    static IllegalArgumentException named(IllegalArgumentException e, Map<String, String> typed) {
        String message = e.getMessage();
        for (Map.Entry<String, String> t : typed.entrySet()) {
            message = message.replaceAll("(?<![\\w-])" + Pattern.quote(t.getKey()) + "(?![\\w-])",
                    Matcher.quoteReplacement(t.getValue()));
        }
        return new IllegalArgumentException(message, e);
    }
}
