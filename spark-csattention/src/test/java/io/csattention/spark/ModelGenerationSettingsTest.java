package io.csattention.spark;

import io.csattention.core.CSAttentionSettings;
import org.junit.jupiter.api.Test;

import java.util.HashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The {@code chatTemplate} generation option: parsed, case-insensitive, false by default, not an index setting. */
class ModelGenerationSettingsTest {

    @Test
    void chatTemplateIsABooleanGenerationOption() {
        Map<String, String> rest = new HashMap<>();
        ModelGeneration.Settings on = ModelGeneration.Settings.take(Map.of("ChatTemplate", " TRUE "), o -> {
            rest.putAll(o);
            return CSAttentionSettings.defaults();
        });
        assertTrue(on.chatTemplate());
        assertTrue(rest.isEmpty(), "not passed on to the index settings; rest=" + rest);
        assertFalse(ModelGeneration.Settings.take(Map.of(), o -> CSAttentionSettings.defaults()).chatTemplate());
        assertEquals("chatTemplate must be true or false; chatTemplate=yes", assertThrows(
                IllegalArgumentException.class, () -> ModelGeneration.Settings.take(Map.of("chatTemplate", "yes"),
                        o -> CSAttentionSettings.defaults())).getMessage());
    }
}
