package io.csattention.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The per-family chat formatters against Jinja2's rendering of the families' published templates
 * (resources/chat/templates.jsonl, generate.py there), and {@link LlamaModel#chatPrompt} on model fixtures.
 */
class ChatTemplateTest {

    @TempDir
    Path dir;

    @Test
    void formattersRenderWhatJinjaRendersForEveryPublishedTemplate() throws IOException {
        ObjectMapper json = new ObjectMapper();
        List<String> failures = new ArrayList<>();
        int cases = 0;
        try (BufferedReader in = new BufferedReader(new InputStreamReader(
                ChatTemplateTest.class.getResourceAsStream("/chat/templates.jsonl"), StandardCharsets.UTF_8))) {
            String line;
            while ((line = in.readLine()) != null) {
                JsonNode c = json.readTree(line);
                cases++;
                String name = c.get("name").asText();
                ChatTemplate template = ChatTemplate.recognize(c.get("template").asText());
                assertTrue(name.startsWith(template.family().name().toLowerCase(java.util.Locale.ROOT) + " "),
                        name + " recognized as " + template.family());
                String rendered = template.render(c.get("question").asText());
                if (!rendered.equals(c.get("rendered").asText())) {
                    failures.add(name + ": expected " + c.get("rendered") + " but was " + json.writeValueAsString(
                            rendered));
                }
            }
        }
        assertEquals(18, cases);
        assertTrue(failures.isEmpty(), String.join("\n", failures));
    }

    @Test
    void llama3ChatPromptEncodesTheHeadersAsControlTokensAfterBos() throws IOException {
        LlamaModel model = ModelFiles.load(ModelFixture.llama3().write(dir.resolve("llama3.gguf")));
        Tokenizer t = model.tokenizer().orElseThrow();
        int[] ids = model.chatPrompt("Why is the sky blue?");
        int bos = t.encodeWithSpecials("")[0];
        int header = t.encodeWithSpecials("<|start_header_id|>")[1];
        int eot = t.encodeWithSpecials("<|eot_id|>")[1];
        assertEquals(bos, ids[0]);
        assertEquals(header, ids[1]);
        assertEquals(1, Arrays.stream(ids).filter(id -> id == eot).count(), "one <|eot_id|>, after the question");
        assertEquals(ChatTemplate.recognize(ModelFixture.LLAMA3_TEMPLATE).render("Why is the sky blue?"),
                t.decode(ids));
        Session session = model.newSession();
        Generation.Result answer = Generation.run(session, session.prefill(ids), new Sampler(0, 1, 1), 4,
                model.stopTokens());
        assertTrue(answer.tokens().length <= 4);
    }

    @Test
    void qwen2ChatPromptOpensWithTheDefaultSystemTurn() throws IOException {
        LlamaModel model = ModelFiles.load(ModelFixture.qwen2().write(dir.resolve("qwen2.gguf")));
        Tokenizer t = model.tokenizer().orElseThrow();
        int[] ids = model.chatPrompt("2+2?");
        int imStart = t.encodeWithSpecials("<|im_start|>")[0];
        assertEquals(imStart, ids[0], "no BOS in Qwen2; the system turn first");
        assertEquals(3, Arrays.stream(ids).filter(id -> id == imStart).count(), "system, user, assistant turns");
        assertEquals("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
                + "<|im_start|>assistant\n", t.decode(ids));
    }

    @Test
    void badTemplatesAndQuestionsEndInOneLine() throws IOException {
        assertEquals("chat template must be one of llama3, chatml, llama2, mistral (recognized by their markers); "
                        + "tokenizer.chat_template={{ bos_token }}{% for message in messages %}<start_of_turn>user",
                assertThrows(IllegalArgumentException.class, () -> ChatTemplate.recognize(
                        "{{ bos_token }}{% for message in messages %}<start_of_turn>user")).getMessage());
        assertEquals("chat formatting needs the model's tokenizer.chat_template; tokenizer.chat_template=absent",
                assertThrows(IllegalArgumentException.class, () -> ChatTemplate.recognize(null)).getMessage());
        assertEquals("question must not be empty; question=' '", assertThrows(IllegalArgumentException.class,
                () -> ChatTemplate.recognize(ModelFixture.QWEN2_TEMPLATE).render(" ")).getMessage());
        Path none = dir.resolve("none.gguf");
        ModelFixture.llama3().writer().put("tokenizer.chat_template", "").write(none);
        assertEquals("chat formatting needs the model's tokenizer.chat_template; tokenizer.chat_template=''",
                assertThrows(IllegalArgumentException.class, () -> ModelFiles.load(none).chatPrompt("hi"))
                        .getMessage());
        LlamaModel stories = Stories260K.model();
        assertEquals("chat formatting needs a tokenizer; tokenizer=none",
                assertThrows(IllegalArgumentException.class, () -> stories.chatPrompt("hi")).getMessage());
    }

    /** A SentencePiece vocabulary with an [INST] piece of its own (Mistral v0.3) cannot be fed the markers as text. */
    @Test
    void sentencePieceVocabularyReadsTheMarkersAsTextUnlessItHasThemAsPieces() {
        LlamaModel base = Stories260K.model();
        String mistral = "{{ bos_token }}{% for message in messages %}{{ '[INST] ' + message['content'] + ' [/INST]' "
                + "}}{% endfor %}";
        String[] pieces = {"<unk>", "<s>", "</s>", "\u2581", "[INST]"};
        LlamaModel plain = new LlamaModel(base.config(), base.weights(), sentencePiece(Arrays.copyOf(pieces, 4)),
                new int[0], mistral);
        int[] ids = plain.chatPrompt("hi");
        assertEquals(1, ids[0], "BOS");
        assertEquals("[INST] hi [/INST]", plain.tokenizer().orElseThrow().decode(ids));
        LlamaModel v3 = new LlamaModel(base.config(), base.weights(), sentencePiece(pieces), new int[0], mistral);
        assertEquals("chat templates whose markers are pieces of their own need a byte-level BPE vocabulary; "
                + "piece=[INST]", assertThrows(IllegalArgumentException.class, () -> v3.chatPrompt("hi")).getMessage());
    }

    private static Tokenizer sentencePiece(String[] specials) {
        List<String> pieces = new ArrayList<>(Arrays.asList(specials));
        for (int b = 0; b < 256; b++) {
            pieces.add(String.format("<0x%02X>", b));
        }
        String[] all = pieces.toArray(new String[0]);
        return new Tokenizer(Tokenizer.Kind.SENTENCEPIECE, all, new float[all.length], true, 1);
    }
}
