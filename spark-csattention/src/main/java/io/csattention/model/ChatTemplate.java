package io.csattention.model;

import java.util.Arrays;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A model's chat template ({@code tokenizer.chat_template}, Jinja in the file) rendered for one user question and the
 * assistant's turn, by a per-family formatter, not a Jinja engine: the family is recognized by the markers its
 * template writes, as llama.cpp's {@code llm_chat_detect_template} does, and the formatter writes what that template
 * renders for {@code messages = [{role: user, content: question}]} with {@code add_generation_prompt}, minus the BOS
 * that the tokenizer adds itself.
 *
 * <ul>
 *   <li>{@code llama3} (the template writes {@code <|start_header_id|>}):
 *       {@code <|start_header_id|>user<|end_header_id|>\n\nQUESTION<|eot_id|>} then
 *       {@code <|start_header_id|>assistant<|end_header_id|>\n\n}, the question trimmed.</li>
 *   <li>{@code chatml} ({@code <|im_start|>}, Qwen2):
 *       {@code <|im_start|>user\nQUESTION<|im_end|>\n<|im_start|>assistant\n}, after the template's default
 *       system turn when it writes one as a literal
 *       ({@code '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n'}).</li>
 *   <li>{@code llama2} ({@code [INST]} and {@code <<SYS>>}): {@code [INST] QUESTION [/INST]}, the question
 *       stripped.</li>
 *   <li>{@code mistral} ({@code [INST]} without {@code <<SYS>>}): {@code [INST] QUESTION [/INST]}, or
 *       {@code [INST] QUESTION[/INST]} when the template writes no space before {@code [/INST]} (v0.3).</li>
 * </ul>
 * Anything else is refused with one line naming the template.
 */
public final class ChatTemplate {

    /** The families this formatter renders. */
    public enum Family { LLAMA3, CHATML, LLAMA2, MISTRAL }

    private static final Pattern CHATML_SYSTEM = Pattern.compile(
            "['\"]<\\|im_start\\|>system\\\\n((?:(?!['\"]).)*?)<\\|im_end\\|>\\\\n['\"]");

    private final Family family;
    /** chatml: the template's default system message, or null. */
    private final String defaultSystem;
    /** mistral: whether [/INST] follows a space. */
    private final boolean spaceBeforeClose;

    private ChatTemplate(Family family, String defaultSystem, boolean spaceBeforeClose) {
        this.family = family;
        this.defaultSystem = defaultSystem;
        this.spaceBeforeClose = spaceBeforeClose;
    }

    /** The names of the families, lower case, for messages and documentation. */
    public static String supported() {
        return String.join(", ", Arrays.stream(Family.values()).map(f -> f.name().toLowerCase(Locale.ROOT)).toList());
    }

    /** The formatter of {@code source} (a {@code tokenizer.chat_template}), or one line naming what it can't render. */
    public static ChatTemplate recognize(String source) {
        if (source == null || source.isBlank()) {
            throw new IllegalArgumentException("chat formatting needs the model's tokenizer.chat_template; "
                    + "tokenizer.chat_template=" + (source == null ? "absent" : "''"));
        }
        if (source.contains("<|start_header_id|>") && source.contains("<|end_header_id|>")) {
            return new ChatTemplate(Family.LLAMA3, null, false);
        }
        if (source.contains("<|im_start|>")) {
            Matcher m = CHATML_SYSTEM.matcher(source);
            return new ChatTemplate(Family.CHATML, m.find() ? m.group(1).replace("\\n", "\n") : null, false);
        }
        if (source.contains("[INST]")) {
            if (source.contains("<<SYS>>")) {
                return new ChatTemplate(Family.LLAMA2, null, true);
            }
            return new ChatTemplate(Family.MISTRAL, null, source.contains(" [/INST]"));
        }
        throw new IllegalArgumentException("chat template must be one of " + supported()
                + " (recognized by their markers); tokenizer.chat_template="
                + io.csattention.format.Printable.of(source, 100));
    }

    public Family family() {
        return family;
    }

    /** The prompt text for one user {@code question} and the assistant's turn; a blank question is refused. */
    public String render(String question) {
        if (question == null || question.isBlank()) {
            throw new IllegalArgumentException("question must not be empty; question="
                    + (question == null ? "null" : "'" + question + "'"));
        }
        return switch (family) {
            case LLAMA3 -> "<|start_header_id|>user<|end_header_id|>\n\n" + question.strip()
                    + "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
            case CHATML -> (defaultSystem == null ? "" : "<|im_start|>system\n" + defaultSystem + "<|im_end|>\n")
                    + "<|im_start|>user\n" + question + "<|im_end|>\n<|im_start|>assistant\n";
            case LLAMA2 -> "[INST] " + question.strip() + " [/INST]";
            case MISTRAL -> "[INST] " + question + (spaceBeforeClose ? " [/INST]" : "[/INST]");
        };
    }
}
