package io.csattention.model;

import io.csattention.baseline.AttentionMethod;
import io.csattention.core.Attention;
import io.csattention.core.BlockDecoder;
import io.csattention.core.BudgetPlan;
import io.csattention.core.CSAttentionSelector;
import io.csattention.core.CSAttentionSettings;
import io.csattention.core.FloatMatrix;
import io.csattention.core.KeySelector;
import io.csattention.core.KeyValueCache;
import io.csattention.core.Rope;
import io.csattention.core.RopeInfo;
import io.csattention.device.PrefillDevice;

import java.util.Arrays;
import java.util.function.IntFunction;
import java.util.stream.IntStream;

/**
 * The forward pass of one sequence: a KV cache per (layer, KV head), the prefill queries, and the attention method
 * decode steps use.
 *
 * <p>{@link #prefill} runs blocks of up to {@value #PREFILL_BLOCK} tokens through each layer as matrix-matrix
 * products with exact causal attention and keeps every query head's (rotated) queries. {@link #useAttention} then
 * builds one {@link KeySelector} per (layer, KV head) from that head's cached keys and the prefill queries of the
 * query heads in its group; every later {@link #decode} step attends the keys its selector picks, and appends its
 * own key and value to the cache and to the selector (streaming). Until {@code useAttention} is called, decode
 * attends every key exactly.
 */
public final class Session {

    /** Tokens per prefill block: large enough to amortize decoding each weight row, small enough for the cache. */
    public static final int PREFILL_BLOCK = 64;
    /** Below this many key-dimension products per layer, attention heads run on the calling thread. */
    private static final long PARALLEL_ATTENTION = 1 << 15;
    /** Head sizes below this attend with inline loops instead of kernel calls. */
    private static final int NARROW_HEAD = 16;
    /** Prefill tokens per tile of causal attention: their queries share each transposed key chunk. */
    private static final int CAUSAL_TILE = 16;

    private final LlamaModel model;
    private final LlamaConfig config;
    /** [layer][kvHead]. */
    private final KeyValueCache[][] caches;
    /** [layer] -> rotated queries of the prefill tokens, [prefillTokens, dim]. */
    private final float[][] prefillQueries;
    private int prefillTokens;
    /** True while {@link #prefillQueries}' arrays may be shared with a fork (copied before the next write). */
    private boolean queriesShared;
    private int position;
    private AttentionMethod method;
    private CSAttentionSettings settings;
    /** [layer][kvHead]; null until {@link #useAttention}. */
    private KeySelector[][] selectors;
    /** Tokens in the cache when {@link #useAttention} built {@link #selectors}. */
    private int positionAtAttention;
    private AttentionProbe probe;
    /**
     * [layer][kvHead]: the caches this session was forked from, whose rows [0, {@link #contextRows}) this session's
     * caches share (half) or copy (float32); full attention of sibling forks decoded in one batch reads those rows
     * once for all of them ({@link Attention#attendGroups}). Null for a session that was not forked.
     */
    private KeyValueCache[][] contextCaches;
    private int contextRows;

    Session(LlamaModel model, KeyValueCache.Precision kvPrecision) {
        this.model = model;
        this.config = model.config();
        this.caches = new KeyValueCache[config.layers()][config.kvHeads()];
        for (KeyValueCache[] layer : caches) {
            for (int g = 0; g < layer.length; g++) {
                layer[g] = new KeyValueCache(config.headSize(), 64, kvPrecision);
            }
        }
        this.prefillQueries = new float[config.layers()][0];
    }

    private Session(Session other) {
        this.model = other.model;
        this.config = other.config;
        this.caches = new KeyValueCache[config.layers()][config.kvHeads()];
        for (int l = 0; l < config.layers(); l++) {
            for (int g = 0; g < config.kvHeads(); g++) {
                caches[l][g] = other.caches[l][g].fork();
            }
        }
        this.prefillQueries = other.prefillQueries.clone();
        this.queriesShared = true;
        other.queriesShared = true;
        this.prefillTokens = other.prefillTokens;
        this.position = other.position;
        this.contextCaches = other.caches;
        this.contextRows = other.position;
    }

    /**
     * A continuation of this sequence with full attention: its caches fork this one's ({@link KeyValueCache#fork}:
     * half rows are shared, not copied; each fork appends its own), the prefill queries are shared until written.
     */
    public Session fork() {
        return new Session(this);
    }

    /**
     * A fork that keeps this session's attention method, for many continuations of one context. csattention's index
     * is shared, not rebuilt: each fork reads the same centroids and lists and streams its own new keys into an
     * overflow of its own. That holds while this session has not decoded since {@link #useAttention}; otherwise,
     * and for the other methods, the fork builds its selectors again over its own caches.
     */
    public Session forkWithAttention() {
        Session copy = new Session(this);
        if (selectors == null) {
            return copy;
        }
        if (!method.usesIndex() || position != positionAtAttention) {
            copy.useAttention(method, settings);
            return copy;
        }
        KeySelector[][] shared = new KeySelector[config.layers()][config.kvHeads()];
        for (int l = 0; l < config.layers(); l++) {
            for (int g = 0; g < config.kvHeads(); g++) {
                shared[l][g] = ((CSAttentionSelector) selectors[l][g]).forkOnto(copy.caches[l][g]);
            }
        }
        copy.method = method;
        copy.settings = settings;
        copy.selectors = shared;
        copy.positionAtAttention = positionAtAttention;
        return copy;
    }

    /** Tokens in the cache. */
    public int position() {
        return position;
    }

    public LlamaModel model() {
        return model;
    }

    public KeyValueCache cache(int layer, int kvHead) {
        return caches[layer][kvHead];
    }

    /** How this sequence stores its keys and values. */
    public KeyValueCache.Precision kvPrecision() {
        return caches[0][0].precision();
    }

    /** Bytes of this sequence's keys and values at their stored precision. */
    public long kvBytes() {
        return sumOverCaches(KeyValueCache::bytes);
    }

    /**
     * Bytes allocated for this sequence's own keys and values: a fork's rows past its context (a half cache shares
     * the context's rows, {@link KeyValueCache#fork}; a float32 one copies them).
     */
    public long kvAllocatedBytes() {
        return sumOverCaches(KeyValueCache::allocatedBytes);
    }

    private long sumOverCaches(java.util.function.ToLongFunction<KeyValueCache> bytes) {
        long total = 0;
        for (KeyValueCache[] layer : caches) {
            for (KeyValueCache cache : layer) {
                total += bytes.applyAsLong(cache);
            }
        }
        return total;
    }

    /** The attention method of decode steps, {@code null} while exact. */
    public AttentionMethod method() {
        return method;
    }

    /** Bytes held by the selectors' own indexes (0 without a method). */
    public long indexBytes() {
        long total = 0;
        if (selectors != null) {
            for (KeySelector[] layer : selectors) {
                for (KeySelector selector : layer) {
                    total += selector.indexBytes();
                }
            }
        }
        return total;
    }

    public void setProbe(AttentionProbe probe) {
        this.probe = probe;
    }

    /**
     * The prefill queries of the query heads that share KV head {@code kvHead}, stacked as rows [tokens * group,
     * headSize] in token order, then head order within a token.
     */
    public FloatMatrix prefillQueries(int layer, int kvHead) {
        int headSize = config.headSize();
        int group = config.groupSize();
        float[] out = new float[prefillTokens * group * headSize];
        for (int t = 0; t < prefillTokens; t++) {
            for (int j = 0; j < group; j++) {
                int head = kvHead * group + j;
                System.arraycopy(prefillQueries[layer], t * config.dim() + head * headSize, out,
                        (t * group + j) * headSize, headSize);
            }
        }
        return new FloatMatrix(prefillTokens * group, headSize, out);
    }

    /**
     * Runs the tokens through the model with exact causal attention, in blocks, and returns the logits [vocab] of
     * the last one.
     */
    public float[] prefill(int[] tokens) {
        checkTokens(tokens);
        float[] last = null;
        for (int from = 0; from < tokens.length; from += PREFILL_BLOCK) {
            int count = Math.min(PREFILL_BLOCK, tokens.length - from);
            last = forward(tokens, from, count, true);
        }
        return requireFinite(last);
    }

    /**
     * Loads a prefill of {@code tokens} computed elsewhere ({@link DevicePrefill}) into this empty session, as if
     * {@link #prefill} had run: each layer's keys and values ({@code rows.apply(layer)}) are appended to the caches
     * through the path the forward pass takes (rounded to the cache's precision), its queries become the prefill
     * queries. Returns {@code logits}, the last token's, checked finite.
     */
    float[] loadPrefill(int[] tokens, IntFunction<PrefillDevice.LayerRows> rows, float[] logits) {
        checkTokens(tokens);
        if (position != 0) {
            throw new IllegalStateException("a loaded prefill needs an empty session; position=" + position);
        }
        int count = tokens.length;
        growPrefillQueries(count);
        for (int l = 0; l < config.layers(); l++) {
            PrefillDevice.LayerRows layer = rows.apply(l);
            if (layer.tokens() != count || layer.keys().length != count * config.kvDim()
                    || layer.values().length != count * config.kvDim()
                    || layer.queries().length != count * config.dim()) {
                throw new IllegalArgumentException("a loaded prefill's rows must cover its " + count
                        + " tokens; layer " + l + " tokens=" + layer.tokens());
            }
            for (int t = 0; t < count; t++) {
                appendToCaches(l, layer.keys(), layer.values(), t);
            }
            System.arraycopy(layer.queries(), 0, prefillQueries[l], 0, count * config.dim());
        }
        position = count;
        prefillTokens = count;
        return requireFinite(logits);
    }

    /** One decode step: appends {@code token} and returns the logits [vocab] of the next token. */
    public float[] decode(int token) {
        int[] one = {token};
        checkTokens(one);
        return requireFinite(forward(one, 0, 1, false));
    }

    /**
     * Logits that are not finite would sample garbage (a NaN weight generates token 0 forever): refused with one line
     * naming the first non-finite weight, found by a pass over the weights only then.
     */
    private float[] requireFinite(float[] logits) {
        for (float v : logits) {
            if (!Float.isFinite(v)) {
                throw new IllegalArgumentException(model.firstNonFiniteWeight()
                        .map(w -> "model weights must be finite; " + w)
                        .orElse("the model's logits must be finite (its weights are); position=" + position));
            }
        }
        return logits;
    }

    /**
     * Decode steps from now on attend with {@code method}: one selector per (layer, KV head) over the cached keys,
     * built from the prefill queries of its group (the index builds run in parallel).
     */
    public void useAttention(AttentionMethod attention, CSAttentionSettings csSettings) {
        if (attention != AttentionMethod.FULL && prefillTokens == 0) {
            throw new IllegalArgumentException("a sparse attention method needs a prefilled context; context tokens="
                    + prefillTokens);
        }
        KeySelector[][] built = new KeySelector[config.layers()][config.kvHeads()];
        IntStream.range(0, config.layers() * config.kvHeads()).parallel().forEach(i -> {
            int layer = i / config.kvHeads();
            int kvHead = i % config.kvHeads();
            built[layer][kvHead] = attention.newSelector(model.kernels(), caches[layer][kvHead],
                    prefillQueries(layer, kvHead), csSettings, ropeInfo());
        });
        this.method = attention;
        this.settings = csSettings;
        this.selectors = built;
        this.positionAtAttention = position;
    }

    /**
     * The model's RoPE as the index needs it: interleaved pairs, the model's own frequencies, and the position of
     * every stacked prefill query row (token-major, {@link #prefillQueries}); the lists are built for the first
     * position after the context.
     */
    private RopeInfo ropeInfo() {
        long[] positions = new long[prefillTokens * config.groupSize()];
        for (int row = 0; row < positions.length; row++) {
            positions[row] = row / config.groupSize();
        }
        return new RopeInfo(config.ropeBase(), Rope.Style.INTERLEAVED, positions, prefillTokens,
                RopeInfo.DEFAULT_DECODE_SPAN, model.ropeFrequencies());
    }

    void checkTokens(int[] tokens) {
        for (int token : tokens) {
            model.checkToken(token);
        }
        model.checkLength((long) position + tokens.length);
    }

    /**
     * The forward pass of {@code count} tokens at positions [position, position + count); returns the logits of
     * the last.
     */
    private float[] forward(int[] tokens, int from, int count, boolean isPrefill) {
        Session[] owners = new Session[count];
        Arrays.fill(owners, this);
        int[] positions = new int[count];
        for (int t = 0; t < count; t++) {
            positions[t] = position + t;
        }
        return forward(model, owners, positions, tokens, from, count, isPrefill, false)[0];
    }

    /**
     * One decode step of several sequences of one model together: row r feeds {@code tokens[r]} to
     * {@code sessions[r]}. Every weight matrix is read once for all of them; each row attends its own sequence's keys
     * with its own method. Returns each sequence's next-token logits [vocab], the same bits as
     * {@code sessions[r].decode(tokens[r])} alone.
     */
    public static float[][] decodeBatch(Session[] sessions, int[] tokens) {
        if (sessions.length != tokens.length || sessions.length == 0) {
            throw new IllegalArgumentException("a batch needs one token per session; sessions=" + sessions.length
                    + ", tokens=" + tokens.length);
        }
        java.util.Set<Session> distinct = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
        int[] positions = new int[sessions.length];
        for (int r = 0; r < sessions.length; r++) {
            Session s = sessions[r];
            if (s.model != sessions[0].model || !distinct.add(s)) {
                throw new IllegalArgumentException("a batch's sessions must be distinct sequences of one model; "
                        + "session " + r + " is " + (s.model != sessions[0].model ? "of another model" : "repeated"));
            }
            s.checkTokens(new int[] {tokens[r]});
            positions[r] = s.position;
        }
        float[][] logits = forward(sessions[0].model, sessions, positions, tokens, 0, sessions.length, false, true);
        for (int r = 0; r < logits.length; r++) {
            sessions[r].requireFinite(logits[r]);
        }
        return logits;
    }

    /**
     * The forward pass of rows [0, count): row r is token {@code tokens[from + r]} of {@code owners[r]} at
     * {@code positions[r]}. In a prefill every row belongs to one sequence, at consecutive positions, with exact
     * causal attention; otherwise each row is one decode step of its own sequence. Returns the logits of every row
     * ({@code allLogits}) or of the last one.
     */
    private static float[][] forward(LlamaModel model, Session[] owners, int[] positions, int[] tokens, int from,
                                     int count, boolean isPrefill, boolean allLogits) {
        LlamaConfig config = model.config();
        int dim = config.dim();
        int kvDim = config.kvDim();
        int hidden = config.hiddenDim();
        float[] x = new float[count * dim];          // residual stream [count, dim]
        float[] xb = new float[count * dim];         // normalized input of a sublayer [count, dim]
        float[] q = new float[count * dim];          // queries [count, heads * headSize]
        float[] k = new float[count * kvDim];        // keys [count, kvHeads * headSize]
        float[] v = new float[count * kvDim];        // values [count, kvHeads * headSize]
        float[] att = new float[count * dim];        // attention output [count, dim]
        float[] proj = new float[count * dim];       // a sublayer's output projection [count, dim]
        float[] gate = new float[count * hidden];    // SwiGLU gate [count, hidden]
        float[] up = new float[count * hidden];      // SwiGLU up [count, hidden]
        Session prefilling = isPrefill ? owners[0] : null;
        model.embed(tokens, from, count, x);
        if (isPrefill) {
            prefilling.growPrefillQueries(count);
        }
        for (int l = 0; l < config.layers(); l++) {
            LlamaWeights.Layer w = model.weights().layers().get(l);
            // attention sublayer
            model.rmsNorm(x, w.attentionNorm(), count, xb);
            model.matmul(w.wq(), xb, count, q);
            model.matmul(w.wk(), xb, count, k);
            model.matmul(w.wv(), xb, count, v);
            addBias(q, w.qBias(), count);
            addBias(k, w.kBias(), count);
            addBias(v, w.vBias(), count);
            model.rope(q, dim, positions);
            model.rope(k, kvDim, positions);
            for (int r = 0; r < count; r++) {
                owners[r].appendToCaches(l, k, v, r);
            }
            if (isPrefill) {
                System.arraycopy(q, 0, prefilling.prefillQueries[l], prefilling.prefillTokens * dim, count * dim);
                prefilling.attendCausal(l, q, count, att);
            } else {
                attendDecode(model, owners, positions, l, q, att);
            }
            model.matmul(w.wo(), att, count, proj);
            add(x, proj, count * dim);
            // feed-forward sublayer
            model.rmsNorm(x, w.ffnNorm(), count, xb);
            model.matmul(w.gate(), xb, count, gate);
            model.matmul(w.up(), xb, count, up);
            LlamaModel.swiGlu(gate, up, count * hidden);
            model.matmul(w.down(), gate, count, proj);
            add(x, proj, count * dim);
        }
        if (isPrefill) {
            prefilling.position += count;
            prefilling.prefillTokens += count;
        } else {
            for (Session owner : owners) {
                owner.position++;
            }
        }
        // the logits of the rows asked for, through the classifier in one product
        int first = allLogits ? 0 : count - 1;
        int rows = count - first;
        float[] last = Arrays.copyOfRange(x, first * dim, count * dim);
        model.rmsNorm(last, model.weights().finalNorm(), rows, last);
        float[] logits = model.classify(last, rows);
        float[][] out = new float[rows][];
        for (int r = 0; r < rows; r++) {
            out[r] = Arrays.copyOfRange(logits, r * config.vocabSize(), (r + 1) * config.vocabSize());
        }
        return out;
    }

    private void growPrefillQueries(int count) {
        int need = (prefillTokens + count) * config.dim();
        for (int l = 0; l < config.layers(); l++) {
            if (prefillQueries[l].length < need || queriesShared) {
                prefillQueries[l] = Arrays.copyOf(prefillQueries[l], Math.max(need, prefillQueries[l].length * 2));
            }
        }
        queriesShared = false;
    }

    /** Appends row {@code t} of k and v [rows, kvDim] to this sequence's caches of {@code layer}. */
    private void appendToCaches(int layer, float[] k, float[] v, int t) {
        int headSize = config.headSize();
        for (int g = 0; g < config.kvHeads(); g++) {
            int off = t * config.kvDim() + g * headSize;
            caches[layer][g].append(k, off, v, off);
            if (selectors != null) {
                selectors[layer][g].keysAppended();
            }
        }
    }

    /**
     * att [count, dim]: every query head of token t attends keys [0, position + t] of its KV head exactly, in tiles
     * of {@value #CAUSAL_TILE} tokens per KV head ({@link Attention#attendCausal}: each key chunk is widened and
     * transposed once per tile), float32 heads narrower than {@value #NARROW_HEAD} per token as before.
     */
    private void attendCausal(int layer, float[] q, int count, float[] att) {
        int heads = config.heads();
        int headSize = config.headSize();
        long work = (long) count * heads * (position + count) * headSize;
        int group = config.groupSize();
        int kvHeads = config.kvHeads();
        int dim = config.dim();
        boolean narrow = headSize < NARROW_HEAD && caches[layer][0].precision() == KeyValueCache.Precision.F32;
        int tile = narrow ? 1 : CAUSAL_TILE;
        int tiles = (count + tile - 1) / tile;
        IntStream pairs = IntStream.range(0, tiles * kvHeads);
        (work < PARALLEL_ATTENTION ? pairs : pairs.parallel()).forEach(i -> {
            int t = i / kvHeads * tile;
            int kvHead = i % kvHeads;
            int off = t * dim + kvHead * group * headSize;
            if (narrow) {
                attendExact(q, off, group, caches[layer][kvHead], position + t + 1, att, off);
            } else {
                Attention.attendCausal(model.kernels(), q, off, dim, Math.min(tile, count - t), group,
                        caches[layer][kvHead], position + t + 1, att, off);
            }
        });
    }

    /**
     * Exact attention of the {@code group} query heads of one KV head over keys [0, n): {@link Attention#attendGroup}
     * (K and V read once for the group), except for float32 heads narrower than {@value #NARROW_HEAD} dimensions,
     * which keep the per-query inline loops below (kernel calls cost more than such a key's work, and llama2.c's
     * run.c, which the 8-dimensional stories260K tests follow token for token, sums as they do).
     */
    private void attendExact(float[] q, int qOff, int group, KeyValueCache cache, int n, float[] out, int outOff) {
        int d = cache.dim();
        if (d < NARROW_HEAD && cache.precision() == KeyValueCache.Precision.F32) {
            for (int g = 0; g < group; g++) {
                attendPrefix(q, qOff + g * d, cache, n, out, outOff + g * d);
            }
        } else {
            Attention.attendGroup(model.kernels(), q, qOff, group, cache, n, out, outOff);
        }
    }

    /**
     * Exact softmax attention of one query over keys [0, n) of the cache. Heads narrower than
     * {@value #NARROW_HEAD} dimensions use inline loops: a kernel call per key costs more than the key's work.
     */
    // not core.Attention: this sums exp in double (Math.exp) where Attention sums the kernels' expShifted in float, so
    // sharing it would change the model's outputs (most output floats differ in their last bits)
    private void attendPrefix(float[] q, int qOff, KeyValueCache cache, int n, float[] out, int outOff) {
        int d = cache.dim();
        // the inline loops read the float32 arrays; a half cache goes through its chunked products at any width
        boolean narrow = d < NARROW_HEAD && cache.precision() == KeyValueCache.Precision.F32;
        float[] keys = narrow ? cache.keys() : null;
        float[] values = narrow ? cache.values() : null;
        float[] scores = new float[n];
        if (narrow) {
            for (int j = 0; j < n; j++) {
                float s = 0;
                for (int i = 0, k = j * d; i < d; i++, k++) {
                    s += q[qOff + i] * keys[k];
                }
                scores[j] = s;
            }
        } else {
            cache.dotKeys(model.kernels(), q, qOff, 0, n, scores, 0);
        }
        float scale = (float) (1.0 / Math.sqrt(d));
        float max = Float.NEGATIVE_INFINITY;
        for (int j = 0; j < n; j++) {
            scores[j] *= scale;
            max = Math.max(max, scores[j]);
        }
        double total = 0;
        for (int j = 0; j < n; j++) {
            scores[j] = (float) Math.exp(scores[j] - max);
            total += scores[j];
        }
        float inv = (float) (1.0 / total);
        Arrays.fill(out, outOff, outOff + d, 0f);
        if (narrow) {
            for (int j = 0; j < n; j++) {
                float p = scores[j] * inv;
                for (int i = 0, v = j * d; i < d; i++, v++) {
                    out[outOff + i] += p * values[v];
                }
            }
        } else {
            for (int j = 0; j < n; j++) {
                scores[j] *= inv;
            }
            cache.addValues(model.kernels(), scores, 0, 0, n, out, outOff);
        }
    }

    /**
     * att [rows, dim]: query head h of row r attends the keys of {@code owners[r]}'s KV head that its selector
     * picks (all of them without a method), at {@code positions[r]}.
     */
    private static void attendDecode(LlamaModel model, Session[] owners, int[] positions, int layer, float[] q,
                                     float[] att) {
        LlamaConfig config = model.config();
        int heads = config.heads();
        int headSize = config.headSize();
        int rows = owners.length;
        long work = 0;
        long[] rowPositions = new long[rows * heads];
        for (int r = 0; r < rows; r++) {
            work += (long) heads * owners[r].position * headSize;
            Arrays.fill(rowPositions, r * heads, (r + 1) * heads, positions[r]);
        }
        int group = config.groupSize();
        int kvHeads = config.kvHeads();
        // full attention of sibling forks: one task per KV head and slice of siblings reads their context's rows
        // once; everything else: one task per sequence and KV head (exact attention reads the head's K and V once
        // for its query heads)
        java.util.List<Runnable> tasks = new java.util.ArrayList<>();
        boolean[] inShare = new boolean[rows];
        for (int[] siblings : siblingsSharingContext(owners)) {
            int slicesPerHead = Math.max(1, Math.min(siblings.length,
                    (2 * java.util.concurrent.ForkJoinPool.getCommonPoolParallelism() + 2 + kvHeads - 1) / kvHeads));
            for (int slice = 0; slice < slicesPerHead; slice++) {
                int[] members = Arrays.copyOfRange(siblings, siblings.length * slice / slicesPerHead,
                        siblings.length * (slice + 1) / slicesPerHead);
                for (int kvHead = 0; kvHead < kvHeads; kvHead++) {
                    int head = kvHead;
                    tasks.add(() -> attendSiblings(model, owners, members, layer, head, q, att));
                }
            }
            for (int r : siblings) {
                inShare[r] = true;
            }
        }
        for (int r = 0; r < rows; r++) {
            if (!inShare[r]) {
                for (int kvHead = 0; kvHead < kvHeads; kvHead++) {
                    int task = r * kvHeads + kvHead;
                    tasks.add(() -> attendRow(model, owners, rowPositions, layer, q, att, task));
                }
            }
        }
        (work < PARALLEL_ATTENTION ? tasks.stream() : tasks.parallelStream()).forEach(Runnable::run);
    }

    /**
     * The rows of {@code owners} (two or more per list, ascending) that attend exactly through {@link
     * Attention#attendGroup} and were forked from the same caches: their context rows can be read once.
     */
    private static java.util.List<int[]> siblingsSharingContext(Session[] owners) {
        java.util.Map<KeyValueCache[][], java.util.List<Integer>> byContext = new java.util.IdentityHashMap<>();
        java.util.List<KeyValueCache[][]> order = new java.util.ArrayList<>();
        for (int r = 0; r < owners.length; r++) {
            Session owner = owners[r];
            if (owner.selectors != null || owner.contextCaches == null || owner.contextRows == 0
                    || !owner.exactIsGrouped()) {
                continue;
            }
            byContext.computeIfAbsent(owner.contextCaches, key -> {
                order.add(key);
                return new java.util.ArrayList<>();
            }).add(r);
        }
        java.util.List<int[]> out = new java.util.ArrayList<>();
        for (KeyValueCache[][] context : order) {
            java.util.List<Integer> members = byContext.get(context);
            if (members.size() >= 2) {
                out.add(members.stream().mapToInt(Integer::intValue).toArray());
            }
        }
        return out;
    }

    /** Whether {@link #attendExact} goes through {@link Attention#attendGroup} (not the narrow float32 loops). */
    private boolean exactIsGrouped() {
        return !(config.headSize() < NARROW_HEAD && caches[0][0].precision() == KeyValueCache.Precision.F32);
    }

    /** Exact attention of the sibling forks {@code members} (rows of owners) for one KV head, context rows shared. */
    private static void attendSiblings(LlamaModel model, Session[] owners, int[] members, int layer, int kvHead,
                                       float[] q, float[] att) {
        LlamaConfig config = model.config();
        int headSize = config.headSize();
        int group = config.groupSize();
        int count = members.length;
        KeyValueCache[] caches = new KeyValueCache[count];
        int[] ns = new int[count];
        int[] offs = new int[count];
        KeyValueCache shared = owners[members[0]].contextCaches[layer][kvHead];
        // forks made at different points of their context share only the rows all of them copied
        int sharedRows = shared.size();
        for (int i = 0; i < count; i++) {
            Session owner = owners[members[i]];
            sharedRows = Math.min(sharedRows, owner.contextRows);
            caches[i] = owner.caches[layer][kvHead];
            ns[i] = caches[i].size();
            offs[i] = (members[i] * config.heads() + kvHead * group) * headSize;
        }
        Attention.attendGroups(model.kernels(), q, offs, group, shared, sharedRows, caches, ns, att, offs);
    }

    /** Query heads of KV head {@code task % kvHeads} of row {@code task / kvHeads}, alone. */
    private static void attendRow(LlamaModel model, Session[] owners, long[] rowPositions, int layer, float[] q,
                                  float[] att, int task) {
        LlamaConfig config = model.config();
        int heads = config.heads();
        int headSize = config.headSize();
        int group = config.groupSize();
        int kvHeads = config.kvHeads();
        Session owner = owners[task / kvHeads];
        int kvHead = task % kvHeads;
        KeyValueCache cache = owner.caches[layer][kvHead];
        int firstRow = (task / kvHeads) * heads + kvHead * group;
        if (owner.selectors == null) {
            owner.attendExact(q, firstRow * headSize, group, cache, cache.size(), att, firstRow * headSize);
            return;
        }
        BudgetPlan plan = owner.method.plan(owner.settings, cache.size());
        if (owner.method == AttentionMethod.CSATTENTION_GROUP) {
            int[] shared = BlockDecoder.decodeShared(model.kernels(), cache,
                    (CSAttentionSelector) owner.selectors[layer][kvHead], plan, q, firstRow, group, rowPositions,
                    att);
            if (owner.probe != null) {
                for (int g = 0; g < group; g++) {
                    int off = (firstRow + g) * headSize;
                    owner.probe.observe(layer, kvHead * group + g, q, off, cache, plan, shared, att, off);
                }
            }
            return;
        }
        // the group's query heads select as one block: each selects what it would alone, and a selector that
        // re-scores its candidates against the key sketch sweeps the sketch once for the group
        int[][] selected = BlockDecoder.decodeBlock(model.kernels(), cache, owner.selectors[layer][kvHead], plan,
                q, firstRow, group, rowPositions, att);
        if (owner.probe != null) {
            for (int g = 0; g < group; g++) {
                int off = (firstRow + g) * headSize;
                owner.probe.observe(layer, kvHead * group + g, q, off, cache, plan, selected[g], att, off);
            }
        }
    }

    /** x [tokens, bias.length] += bias in every row; nothing when the model has no such bias. */
    private static void addBias(float[] x, float[] bias, int tokens) {
        if (bias == null) {
            return;
        }
        for (int t = 0; t < tokens; t++) {
            for (int i = 0; i < bias.length; i++) {
                x[t * bias.length + i] += bias[i];
            }
        }
    }

    private static void add(float[] x, float[] y, int length) {
        for (int i = 0; i < length; i++) {
            x[i] += y[i];
        }
    }
}
