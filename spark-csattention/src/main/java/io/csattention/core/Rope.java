package io.csattention.core;

/**
 * Rotary position embedding of a head vector: pair p rotates by {@code position * base^(-2p/d)}. Two pairings are
 * in use: {@link Style#INTERLEAVED} pairs (2p, 2p+1) as llama2.c and GGUF llama files do; {@link Style#HALF} pairs
 * (p, p + d/2) as Hugging Face checkpoints do.
 */
public final class Rope {

    public enum Style { INTERLEAVED, HALF }

    private Rope() {
    }

    /** Rotates {@code x[off .. off+d)} in place to {@code position} (a negative position rotates back). */
    public static void rotate(float[] x, int off, int d, double position, double base, Style style) {
        for (int p = 0; p < d / 2; p++) {
            double angle = position * Math.pow(base, -2.0 * p / d);
            double cos = Math.cos(angle);
            double sin = Math.sin(angle);
            int a = style == Style.INTERLEAVED ? off + 2 * p : off + p;
            int b = style == Style.INTERLEAVED ? off + 2 * p + 1 : off + p + d / 2;
            double xa = x[a];
            double xb = x[b];
            x[a] = (float) (xa * cos - xb * sin);
            x[b] = (float) (xa * sin + xb * cos);
        }
    }
}
