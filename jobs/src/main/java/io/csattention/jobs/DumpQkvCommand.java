package io.csattention.jobs;

import io.csattention.baseline.AttentionMethod;
import io.csattention.core.CSAttentionSettings;
import io.csattention.core.FloatMatrix;
import io.csattention.core.KeyValueCache;
import io.csattention.format.Npy;
import io.csattention.model.LlamaConfig;
import io.csattention.model.LlamaModel;
import io.csattention.model.Sampler;
import io.csattention.model.Session;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.concurrent.Callable;

/**
 * {@code dump-qkv}: the inputs of {@code eval-tensors} from a model's real heads. The context is the prompt tokens,
 * extended to {@code --context-tokens} by sampling from the model (temperature 1, top-p 0.9, {@code --seed}); it is
 * prefilled (where {@code --device} says, {@link PrefillDeviceOption}; the CPU by default), then {@code --queries}
 * tokens are decoded greedily with full attention. For every layer L and KV head H,
 * {@code DIR/layer{L}_kvhead{H}/} receives (float32, C order; RoPE already applied to queries and keys):
 * <ul>
 *   <li>{@code K.npy}, {@code V.npy}: [T, headSize], the context's keys and values;</li>
 *   <li>{@code PQ.npy}: [T * group, headSize], the prefill queries of the group's query heads, token-major;</li>
 *   <li>{@code Q.npy}: [queries * group, headSize], the decode queries of those heads, token-major;</li>
 *   <li>{@code PP.npy}, {@code QP.npy}: int32 [rows], the position of each row of PQ and Q (for
 *   {@code --prefill-query-positions} / {@code --query-positions}; RoPE is interleaved, base in {@code DIR/model.txt}).</li>
 * </ul>
 */
@Command(name = "dump-qkv", mixinStandardHelpOptions = true,
        description = "Write per (layer, KV head) K, V, prefill and decode queries of a model's context as .npy.")
final class DumpQkvCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Mixin
    ModelOptions model;

    @Option(names = "--prompt-tokens", required = true, paramLabel = "IDS",
            description = "the context's first token ids, e.g. \"1\"")
    String promptTokens;

    @Option(names = "--context-tokens", required = true, description = "context length T")
    int contextTokens;

    @Option(names = "--queries", defaultValue = "64",
            description = "decode steps whose queries are written (default ${DEFAULT-VALUE})")
    int queries;

    @Option(names = "--seed", defaultValue = "1234",
            description = "seed of the sampled context extension (default ${DEFAULT-VALUE})")
    long seed;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "output folder")
    Path out;

    @Mixin
    PrefillDeviceOption device;

    @Override
    public Integer call() throws Exception {
        OutputDir.check(out);
        device.mode();  // a bad --device fails before the model loads
        LlamaModel loaded = model.load();
        LlamaConfig config = loaded.config();
        int[] prompt = ModelOptions.parseTokens(promptTokens, loaded);
        if (contextTokens < prompt.length) {
            throw new IllegalArgumentException("context-tokens must be >= the prompt's " + prompt.length
                    + " tokens; context-tokens=" + contextTokens);
        }
        loaded.checkLength((long) contextTokens + queries);
        int[] context = extend(loaded, prompt, contextTokens);

        Session session = loaded.newSession();
        float[] logits = device.prefill(session, context);
        FloatMatrix[][] keys = new FloatMatrix[config.layers()][config.kvHeads()];
        FloatMatrix[][] values = new FloatMatrix[config.layers()][config.kvHeads()];
        for (int l = 0; l < config.layers(); l++) {
            for (int g = 0; g < config.kvHeads(); g++) {
                KeyValueCache cache = session.cache(l, g);
                keys[l][g] = cache.keyMatrix();
                values[l][g] = cache.valueMatrix();
            }
        }
        int headSize = config.headSize();
        int group = config.groupSize();
        float[][][] decodeQueries = new float[config.layers()][config.kvHeads()][queries * group * headSize];
        int[] step = {0};
        session.useAttention(AttentionMethod.FULL, CSAttentionSettings.defaults());
        session.setProbe((layer, head, query, queryOff, cache, plan, selected, output, outOff) -> {
            int row = step[0] * group + head % group;
            System.arraycopy(query, queryOff, decodeQueries[layer][head / group], row * headSize, headSize);
        });
        for (int i = 0; i < queries; i++) {
            step[0] = i;
            logits = session.decode(Sampler.argmax(logits));
        }

        int[] prefillPositions = positions(0, contextTokens, group);
        int[] queryPositions = positions(contextTokens, queries, group);
        OutputDir.write(out, dir -> {
            for (int l = 0; l < config.layers(); l++) {
                for (int g = 0; g < config.kvHeads(); g++) {
                    Path head = dir.resolve("layer" + l + "_kvhead" + g);
                    Files.createDirectories(head);
                    Npy.write(head.resolve("K.npy"), keys[l][g]);
                    Npy.write(head.resolve("V.npy"), values[l][g]);
                    Npy.write(head.resolve("PQ.npy"), session.prefillQueries(l, g));
                    Npy.write(head.resolve("Q.npy"),
                            new FloatMatrix(queries * group, headSize, decodeQueries[l][g]));
                    Npy.writeIntVector(head.resolve("PP.npy"), prefillPositions);
                    Npy.writeIntVector(head.resolve("QP.npy"), queryPositions);
                }
            }
            Files.writeString(dir.resolve("model.txt"), String.format(Locale.ROOT,
                    "model=%s%nlayers=%d%nkv_heads=%d%nheads=%d%nhead_size=%d%nrope_base=%s%n"
                            + "rope_style=interleaved%ncontext_tokens=%d%nqueries=%d%ncontext=%s%n", model.model,
                    config.layers(), config.kvHeads(), config.heads(), headSize, config.ropeBase(), contextTokens,
                    queries, Arrays.toString(context)));
        });
        spec.commandLine().getOut().printf(Locale.ROOT, "wrote %d (layer, kv head) folders of K, V [%d, %d], PQ "
                        + "[%d, %d], Q [%d, %d] to %s%n", config.layers() * config.kvHeads(), contextTokens, headSize,
                contextTokens * group, headSize, queries * group, headSize, out);
        spec.commandLine().getOut().flush();
        return 0;
    }

    private int[] extend(LlamaModel loaded, int[] prompt, int length) {
        if (prompt.length == length) {
            return prompt;
        }
        int[] context = Arrays.copyOf(prompt, length);
        Sampler sampler = new Sampler(1.0f, 0.9f, seed);
        Session session = loaded.newSession();
        float[] logits = device.prefill(session, prompt);
        for (int i = prompt.length; i < length; i++) {
            context[i] = sampler.sample(logits);
            if (i + 1 < length) {
                logits = session.decode(context[i]);
            }
        }
        return context;
    }

    private static int[] positions(int first, int tokens, int group) {
        int[] out = new int[tokens * group];
        for (int i = 0; i < out.length; i++) {
            out[i] = first + i / group;
        }
        return out;
    }
}
