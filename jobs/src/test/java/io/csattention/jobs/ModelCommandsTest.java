package io.csattention.jobs;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.csattention.core.FloatMatrix;
import io.csattention.format.Npy;
import io.csattention.core.KeyValueCache;
import io.csattention.model.LlamaModel;
import io.csattention.model.ModelFiles;
import io.csattention.model.Sampler;
import io.csattention.model.Session;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** generate, eval-model and dump-qkv on the bundled stories260K checkpoint, and their one-line errors. */
class ModelCommandsTest {

    private static final Path MODEL = Path.of("../spark-csattention/src/test/resources/models/stories260K.bin");

    @TempDir
    Path dir;

    private record Result(int code, String out, String err) {
        String lastLine() {
            String[] lines = out.strip().split("\n");
            return lines[lines.length - 1];
        }
    }

    private static Result run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int code = Main.run(args, new PrintWriter(out, true), new PrintWriter(err, true));
        return new Result(code, out.toString(), err.toString());
    }

    @Test
    void generatePrintsTheGreedyTokensAsTheLastLine() throws Exception {
        Result result = run("generate", "--model", MODEL.toString(), "--prompt-tokens", "1 361", "--max-new-tokens",
                "12");
        assertEquals(0, result.code(), result.err());
        LlamaModel model = ModelFiles.load(MODEL);
        Session session = model.newSession();
        float[] logits = session.prefill(new int[] {1, 361});
        int[] expected = new int[12];
        for (int i = 0; i < expected.length; i++) {
            expected[i] = Sampler.argmax(logits);
            logits = session.decode(expected[i]);
        }
        assertEquals(Arrays.stream(expected).mapToObj(Integer::toString).collect(Collectors.joining(" ")),
                result.lastLine());
        assertTrue(result.err().contains("tokens/s"), result.err());
    }

    /** --kv-precision chooses the session's KV storage: each gives the greedy tokens of a session of that precision. */
    @Test
    void generateKeepsTheKvCacheInTheChosenPrecision() throws Exception {
        LlamaModel model = ModelFiles.load(MODEL);
        for (KeyValueCache.Precision kv : KeyValueCache.Precision.values()) {
            Result result = run("generate", "--model", MODEL.toString(), "--prompt-tokens", "1 361",
                    "--max-new-tokens", "40", "--kv-precision", kv.id().toUpperCase(java.util.Locale.ROOT));
            assertEquals(0, result.code(), result.err());
            Session session = model.newSession(kv);
            float[] logits = session.prefill(new int[] {1, 361});
            int[] expected = new int[40];
            for (int i = 0; i < expected.length; i++) {
                expected[i] = Sampler.argmax(logits);
                logits = session.decode(expected[i]);
            }
            assertEquals(Arrays.stream(expected).mapToObj(Integer::toString).collect(Collectors.joining(" ")),
                    result.lastLine(), kv.id());
        }
        assertError("--kv-precision must be one of f16, bf16, f32; kv-precision=fp8",
                "generate", "--model", MODEL.toString(), "--prompt-tokens", "1", "--max-new-tokens", "3",
                "--kv-precision", "fp8");
    }

    /** A 512-piece llama2.c tokenizer: <unk>, <s>, </s>, 256 bytes, then " w259", " w260", ... as whole words. */
    private Path writeTokenizer() throws java.io.IOException {
        java.io.ByteArrayOutputStream bytes = new java.io.ByteArrayOutputStream();
        bytes.writeBytes(le(8));
        for (int i = 0; i < 512; i++) {
            String piece = i == 0 ? "<unk>" : i == 1 ? "<s>" : i == 2 ? "</s>" : i < 259
                    ? String.format("<0x%02X>", i - 3) : " w" + i;
            byte[] utf8 = piece.getBytes(java.nio.charset.StandardCharsets.UTF_8);
            bytes.writeBytes(le(Float.floatToIntBits(0f)));
            bytes.writeBytes(le(utf8.length));
            bytes.writeBytes(utf8);
        }
        return java.nio.file.Files.write(dir.resolve("tokenizer.bin"), bytes.toByteArray());
    }

    @Test
    void generateFromTextPrintsTheTextAboveTheIds() throws Exception {
        Path tokenizer = writeTokenizer();
        Result result = run("generate", "--model", MODEL.toString(), "--tokenizer", tokenizer.toString(), "--prompt",
                "Hi", "--max-new-tokens", "4");
        assertEquals(0, result.code(), result.err());
        String[] lines = result.out().strip().split("\n");
        int[] ids = Arrays.stream(lines[lines.length - 1].split(" ")).mapToInt(Integer::parseInt).toArray();
        StringBuilder text = new StringBuilder();
        for (int id : ids) {
            text.append(id >= 259 ? " w" + id : String.valueOf((char) (id - 3)));
        }
        assertEquals(text.toString().stripLeading(), lines[lines.length - 2]);
    }

    private static byte[] le(int v) {
        return java.nio.ByteBuffer.allocate(4).order(java.nio.ByteOrder.LITTLE_ENDIAN).putInt(v).array();
    }

    @Test
    void generateWithSparseAttentionAndSampling() {
        Result first = run("generate", "--model", MODEL.toString(), "--prompt-tokens", "1 361 9 43 13",
                "--max-new-tokens", "10", "--attention", "csattention", "--sparsity", "0.5", "--temperature", "0.8",
                "--seed", "7");
        Result second = run("generate", "--model", MODEL.toString(), "--prompt-tokens", "1 361 9 43 13",
                "--max-new-tokens", "10", "--attention", "csattention", "--sparsity", "0.5", "--temperature", "0.8",
                "--seed", "7");
        assertEquals(0, first.code(), first.err());
        assertEquals(10, first.lastLine().split(" ").length);
        assertEquals(first.lastLine(), second.lastLine(), "seeded sampling repeats");
    }

    @Test
    void evalModelEndsWithOneJsonObject() throws Exception {
        Result result = run("eval-model", "--model", MODEL.toString(), "--contexts", "1", "--context-tokens", "64",
                "--continuations", "2", "--new-tokens", "6", "--sparsity", "0.5", "--json");
        assertEquals(0, result.code(), result.err());
        JsonNode json = new ObjectMapper().readTree(result.lastLine());
        for (String method : new String[] {"full", "csattention", "quest", "keycluster", "oracle"}) {
            assertTrue(json.get("agreement").has(method), method);
            assertTrue(json.get("recall").get(method).asDouble() > 0, method);
        }
        assertEquals(1.0, json.get("agreement").get("full").asDouble());
        assertEquals(1.0, json.get("recall").get("oracle").asDouble(), 1e-12);
        assertEquals(12, json.get("positions").asInt());
        assertEquals(0.5, json.get("settings").get("sparsity").asDouble());
        assertEquals(5, json.get("recall_by_layer_head").get("csattention").size());
    }

    @Test
    void dumpQkvWritesTheInputsOfEvalTensors() throws Exception {
        Path out = dir.resolve("qkv");
        Result result = run("dump-qkv", "--model", MODEL.toString(), "--prompt-tokens", "1", "--context-tokens",
                "40", "--queries", "3", "--out", out.toString());
        assertEquals(0, result.code(), result.err());
        Path head = out.resolve("layer4_kvhead3");
        FloatMatrix k = Npy.readMatrix(head.resolve("K.npy"));
        assertEquals(40, k.rows());
        assertEquals(8, k.cols());
        assertEquals(40, Npy.readMatrix(head.resolve("V.npy")).rows());
        assertEquals(80, Npy.readMatrix(head.resolve("PQ.npy")).rows());
        assertEquals(6, Npy.readMatrix(head.resolve("Q.npy")).rows());
        assertEquals(41, Npy.readLongs(head.resolve("QP.npy"))[2]);
        assertEquals(80, Npy.readLongs(head.resolve("PP.npy")).length);
        // the cached keys of the dump are the model's own
        LlamaModel model = ModelFiles.load(MODEL);
        assertEquals(model.config().headSize(), k.cols());
    }

    @Test
    void badInputEndsInOneLineAndExitCode2() {
        String missing = dir.resolve("missing.bin").toString();
        assertError("model file must exist; model=" + missing,
                "generate", "--model", missing, "--prompt-tokens", "1", "--max-new-tokens", "3");
        assertError("token ids must be in [0, 512); token=600",
                "generate", "--model", MODEL.toString(), "--prompt-tokens", "1 600", "--max-new-tokens", "3");
        assertError("context must be at most the model's context length 512 tokens; tokens=601",
                "generate", "--model", MODEL.toString(), "--prompt-tokens", "1", "--max-new-tokens", "600");
        assertError("unknown method 'sparse'; expected one of full,oracle,quest,keycluster,csattention,csattention_group",
                "generate", "--model", MODEL.toString(), "--prompt-tokens", "1", "--max-new-tokens", "3",
                "--attention", "sparse");
        assertError("prompt-tokens must be integers; token=x",
                "generate", "--model", MODEL.toString(), "--prompt-tokens", "1 x", "--max-new-tokens", "3");
        assertError("--prompt needs a tokenizer (GGUF vocabulary or --tokenizer); model=" + MODEL,
                "generate", "--model", MODEL.toString(), "--prompt", "Once", "--max-new-tokens", "3");
        assertError("context-tokens + new-tokens must be at most the model's context length 512; tokens=520",
                "eval-model", "--model", MODEL.toString(), "--context-tokens", "456", "--new-tokens", "64");
    }

    /** A NaN in layer 0's attention norm of a copy of stories260K: refused with the tensor's name, nothing generated. */
    @Test
    void nonFiniteWeightsAreRefusedNamingTheTensor() throws Exception {
        byte[] file = java.nio.file.Files.readAllBytes(MODEL);
        java.nio.ByteBuffer bytes = java.nio.ByteBuffer.wrap(file).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        int dim = bytes.getInt(0);
        int vocab = Math.abs(bytes.getInt(20));
        // llama2.c layout: a 7-int header, the token embedding [vocab, dim], then the attention norms [layers, dim]
        bytes.putFloat(28 + 4 * vocab * dim + 4 * 5, Float.NaN);
        Path corrupted = java.nio.file.Files.write(dir.resolve("nan.bin"), file);
        Result result = run("generate", "--model", corrupted.toString(), "--prompt-tokens", "1 361",
                "--max-new-tokens", "3");
        assertEquals(2, result.code(), result.err());
        assertEquals("error: model weights must be finite; blk.0.attn_norm.weight[5]=NaN", result.err().strip());
        assertEquals("", result.out());
    }

    /** --chat formats text with the file's chat template: a llama2.c model has none. */
    @Test
    void chatNeedsTextAndAChatTemplate() throws Exception {
        assertError("--chat formats a text question and needs --prompt; --prompt-tokens=1 2",
                "generate", "--model", MODEL.toString(), "--prompt-tokens", "1 2", "--max-new-tokens", "3", "--chat");
        assertError("chat formatting needs the model's tokenizer.chat_template; tokenizer.chat_template=absent",
                "generate", "--model", MODEL.toString(), "--tokenizer", writeTokenizer().toString(), "--prompt", "Hi",
                "--max-new-tokens", "3", "--chat");
    }

    /**
     * --device cpu is the default's output; auto without a usable GPU falls back to the CPU's prefill and prints the
     * same tokens and rows; bad values and a missing device are one line.
     */
    @Test
    void theDeviceOfTheModelPrefillIsCpuByDefaultAndCheckedInOneLine() throws Exception {
        String[] generate = {"generate", "--model", MODEL.toString(), "--prompt-tokens", "1 361 9", "--max-new-tokens",
                "8"};
        Result plain = run(generate);
        assertEquals(0, plain.code(), plain.err());
        Result cpu = run(with(generate, "--device", "cpu"));
        assertEquals(0, cpu.code(), cpu.err());
        assertEquals(plain.out(), cpu.out());
        Path defaultDump = dir.resolve("default");
        Path cpuDump = dir.resolve("cpu");
        String[] dump = {"dump-qkv", "--model", MODEL.toString(), "--prompt-tokens", "1", "--context-tokens", "30",
                "--queries", "2"};
        assertEquals(0, run(with(dump, "--out", defaultDump.toString())).code());
        assertEquals(0, run(with(dump, "--out", cpuDump.toString(), "--device", "cpu")).code());
        for (String file : new String[] {"K.npy", "V.npy", "PQ.npy", "Q.npy"}) {
            assertArrayEquals(java.nio.file.Files.readAllBytes(defaultDump.resolve("layer2_kvhead1").resolve(file)),
                    java.nio.file.Files.readAllBytes(cpuDump.resolve("layer2_kvhead1").resolve(file)), file);
        }

        assertError("device must be one of auto, cpu, gpu; device=tpu", with(generate, "--device", "tpu"));
        assertError("device must be one of auto, cpu, gpu; device=tpu",
                with(dump, "--out", dir.resolve("tpu").toString(), "--device", "tpu"));
        assertError("--gpu must be an integer in [0, 1023]; --gpu=-1", with(generate, "--gpu", "-1"));
        assertError("Invalid value for option '--gpu': 'x' is not an int (run with --help for usage)", with(dump, "--out",
                dir.resolve("x").toString(), "--gpu", "x"));
        assertError("--gpu picks the GPU of a local prefill; the Spark job's tasks use the GPU they were assigned; "
                + "--gpu=1", "generate", "--model", MODEL.toString(), "--contexts", dir.resolve("c").toString(),
                "--questions", dir.resolve("q").toString(), "--out", dir.resolve("a").toString(),
                "--max-new-tokens", "3", "--gpu", "1");

        String reason = io.csattention.device.Backends.gpuUnavailableReason(0);
        org.junit.jupiter.api.Assumptions.assumeTrue(reason != null, "a usable GPU is present");
        Result auto = run(with(generate, "--device", "auto"));
        assertEquals(0, auto.code(), auto.err());
        assertEquals(plain.lastLine(), auto.lastLine());
        assertError("device gpu needs a usable CUDA device: " + reason + "; device=gpu",
                with(generate, "--device", "gpu"));
        Path gpuDump = dir.resolve("gpu");
        assertError("device gpu needs a usable CUDA device: " + reason + "; device=gpu",
                with(dump, "--out", gpuDump.toString(), "--device", "gpu"));
        assertTrue(!java.nio.file.Files.exists(gpuDump), "nothing written");
    }

    private static String[] with(String[] args, String... more) {
        String[] out = Arrays.copyOf(args, args.length + more.length);
        System.arraycopy(more, 0, out, args.length, more.length);
        return out;
    }

    private void assertError(String message, String... args) {
        Result result = run(args);
        assertEquals(2, result.code(), result.err());
        assertEquals("error: " + message, result.err().strip());
    }
}
