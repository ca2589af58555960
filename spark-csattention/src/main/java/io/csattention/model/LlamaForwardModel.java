package io.csattention.model;

import io.csattention.device.ForwardModel;

/** A {@link LlamaModel} as a device forward pass reads it ({@link ForwardModel}). */
public final class LlamaForwardModel implements ForwardModel {

    private final LlamaModel model;
    private final LlamaConfig config;

    private LlamaForwardModel(LlamaModel model) {
        this.model = model;
        this.config = model.config();
    }

    public static ForwardModel of(LlamaModel model) {
        return new LlamaForwardModel(model);
    }

    private static Matrix matrix(WeightMatrix m) {
        return new Matrix() {
            @Override
            public int rows() {
                return m.rows();
            }

            @Override
            public int cols() {
                return m.cols();
            }

            @Override
            public void row(int r, float[] dst, int off) {
                m.row(r, dst, off);
            }
        };
    }

    @Override
    public int dim() {
        return config.dim();
    }

    @Override
    public int hiddenDim() {
        return config.hiddenDim();
    }

    @Override
    public int layers() {
        return config.layers();
    }

    @Override
    public int heads() {
        return config.heads();
    }

    @Override
    public int kvHeads() {
        return config.kvHeads();
    }

    @Override
    public int vocabSize() {
        return config.vocabSize();
    }

    @Override
    public int contextLength() {
        return config.contextLength();
    }

    @Override
    public int ropeDim() {
        return config.ropeDim();
    }

    @Override
    public float normEps() {
        return config.normEps();
    }

    @Override
    public float[] ropeFrequencies() {
        return model.ropeFrequencies();
    }

    @Override
    public Layer layer(int index) {
        LlamaWeights.Layer l = model.weights().layers().get(index);
        return new Layer(l.attentionNorm(), matrix(l.wq()), matrix(l.wk()), matrix(l.wv()), matrix(l.wo()), l.qBias(),
                l.kBias(), l.vBias(), l.ffnNorm(), matrix(l.gate()), matrix(l.up()), matrix(l.down()));
    }

    @Override
    public float[] finalNorm() {
        return model.weights().finalNorm();
    }

    @Override
    public Matrix classifier() {
        return matrix(model.weights().classifier());
    }

    @Override
    public Matrix tokenEmbedding() {
        return matrix(model.weights().tokenEmbedding());
    }
}
