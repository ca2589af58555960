package io.csattention.model;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;

/**
 * Reads llama2.c's legacy checkpoint format ({@code export.py --version 0}, what {@code run.c} reads).
 *
 * <p>Layout, little-endian: 7 int32 {@code dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len}
 * (a negative vocab_size means the classifier is stored separately, otherwise it is tied to the embedding), then
 * float32 arrays in this order: token embedding [vocab, dim]; attention RMSNorm [layers, dim]; wq [layers, dim,
 * dim]; wk [layers, kvDim, dim]; wv [layers, kvDim, dim]; wo [layers, dim, dim]; FFN RMSNorm [layers, dim]; w1
 * [layers, hidden, dim]; w2 [layers, dim, hidden]; w3 [layers, hidden, dim]; final RMSNorm [dim]; two legacy RoPE
 * tables [seq_len, head_size / 2] each (ignored: RoPE is computed); the classifier [vocab, dim] when not tied.
 * Matrices are memory-mapped, one mapping per tensor. RoPE base 10000 and RMSNorm epsilon 1e-5, as in run.c.
 */
public final class Llama2cCheckpoint {

    static final int HEADER_BYTES = 7 * 4;
    /** The magic of llama2.c's newer export versions ("ak42"), which this reader names when it refuses them. */
    static final int NEWER_EXPORT_MAGIC = 0x616b3432;

    private Llama2cCheckpoint() {
    }

    /** True when the first bytes look like a plausible llama2.c header. */
    static boolean looksLikeHeader(ByteBuffer header) {
        if (header.remaining() < HEADER_BYTES) {
            return false;
        }
        ByteBuffer h = header.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        int dim = h.getInt(0);
        int hidden = h.getInt(4);
        int layers = h.getInt(8);
        int heads = h.getInt(12);
        int kvHeads = h.getInt(16);
        int vocab = Math.abs(h.getInt(20));
        int seqLen = h.getInt(24);
        return dim > 0 && dim <= 1 << 16 && hidden > 0 && hidden <= 1 << 18 && layers > 0 && layers <= 1024
                && heads > 0 && dim % heads == 0 && kvHeads > 0 && heads % kvHeads == 0 && vocab > 0
                && vocab <= 1 << 22 && seqLen > 0 && seqLen <= 1 << 24;
    }

    public static LlamaModel load(Path file) throws IOException {
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = channel.size();
            ByteBuffer header = ByteBuffer.allocate(HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
            while (header.hasRemaining() && channel.read(header) >= 0) {
                // read the whole header
            }
            header.flip();
            if (header.remaining() >= 4 && header.getInt(0) == NEWER_EXPORT_MAGIC) {
                throw new IOException("llama2.c checkpoint must be the legacy export (version 0); model=" + file);
            }
            if (!looksLikeHeader(header)) {
                throw new IOException("model file must be GGUF or a llama2.c checkpoint; model=" + file);
            }
            int vocabField = header.getInt(20);
            LlamaConfig config = new LlamaConfig(header.getInt(0), header.getInt(4), header.getInt(8),
                    header.getInt(12), header.getInt(16), Math.abs(vocabField), header.getInt(24), 10000f,
                    header.getInt(0) / header.getInt(12), 1e-5f);
            boolean tied = vocabField > 0;
            long expected = HEADER_BYTES + 4L * weightFloats(config, tied);
            if (size < expected) {
                throw new IOException("model file is truncated: a llama2.c checkpoint of this header needs "
                        + expected + " bytes; size=" + size + " (model=" + file + ")");
            }
            if (size > expected) {
                throw new IOException("llama2.c checkpoint must be exactly the " + expected + " bytes its header "
                        + "implies (a wrong header, or not a legacy export); size=" + size + " (model=" + file + ")");
            }
            return new LlamaModel(config, map(channel, config, tied), null);
        }
    }

    static long weightFloats(LlamaConfig c, boolean tied) {
        long dim = c.dim();
        long layers = c.layers();
        long kvDim = c.kvDim();
        long hidden = c.hiddenDim();
        return c.vocabSize() * dim + layers * dim + layers * dim * dim * 2 + layers * dim * kvDim * 2 + layers * dim
                + layers * dim * hidden * 3 + dim + (long) c.contextLength() * c.headSize()
                + (tied ? 0 : c.vocabSize() * dim);
    }

    private static LlamaWeights map(FileChannel channel, LlamaConfig c, boolean tied) throws IOException {
        Cursor at = new Cursor(channel, HEADER_BYTES);
        int dim = c.dim();
        int kvDim = c.kvDim();
        int hidden = c.hiddenDim();
        int n = c.layers();
        WeightMatrix embedding = at.matrix("token_embedding", c.vocabSize(), dim);
        float[][] attentionNorms = at.vectors(n, dim);
        WeightMatrix[] wq = at.matrices("wq", n, dim, dim);
        WeightMatrix[] wk = at.matrices("wk", n, kvDim, dim);
        WeightMatrix[] wv = at.matrices("wv", n, kvDim, dim);
        WeightMatrix[] wo = at.matrices("wo", n, dim, dim);
        float[][] ffnNorms = at.vectors(n, dim);
        WeightMatrix[] w1 = at.matrices("w1", n, hidden, dim);
        WeightMatrix[] w2 = at.matrices("w2", n, dim, hidden);
        WeightMatrix[] w3 = at.matrices("w3", n, hidden, dim);
        float[] finalNorm = at.vectors(1, dim)[0];
        at.skip((long) c.contextLength() * c.headSize() * 4);
        WeightMatrix classifier = tied ? embedding : at.matrix("classifier", c.vocabSize(), dim);
        List<LlamaWeights.Layer> layers = new ArrayList<>();
        for (int l = 0; l < n; l++) {
            layers.add(new LlamaWeights.Layer(attentionNorms[l], wq[l], wk[l], wv[l], wo[l], ffnNorms[l], w1[l],
                    w2[l], w3[l]));
        }
        return new LlamaWeights(embedding, layers, finalNorm, classifier, null);
    }

    /** Walks the file's float32 arrays in order, mapping each matrix. */
    private static final class Cursor {
        private final FileChannel channel;
        private long offset;

        Cursor(FileChannel channel, long offset) {
            this.channel = channel;
            this.offset = offset;
        }

        WeightMatrix matrix(String name, int rows, int cols) throws IOException {
            long bytes = 4L * rows * cols;
            ByteBuffer mapped = channel.map(FileChannel.MapMode.READ_ONLY, offset, bytes);
            offset += bytes;
            return WeightMatrix.of(name, TensorType.F32, rows, cols, mapped);
        }

        WeightMatrix[] matrices(String name, int count, int rows, int cols) throws IOException {
            WeightMatrix[] out = new WeightMatrix[count];
            for (int i = 0; i < count; i++) {
                out[i] = matrix("layer" + i + "." + name, rows, cols);
            }
            return out;
        }

        float[][] vectors(int count, int length) throws IOException {
            float[][] out = new float[count][];
            for (int i = 0; i < count; i++) {
                out[i] = matrix("norm", 1, length).toFloats();
            }
            return out;
        }

        void skip(long bytes) {
            offset += bytes;
        }
    }
}
