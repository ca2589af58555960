package io.csattention.format;

/** Text read from a file, made safe to show in a one-line error message. */
public final class Printable {

    private Printable() {
    }

    /**
     * {@code text} with control characters and line separators written as {@code \xNN} or {@code \\uNNNN}, cut to
     * {@code max} characters (then ending in "...").
     */
    public static String of(String text, int max) {
        if (text == null) {
            return "null";
        }
        StringBuilder out = new StringBuilder();
        int i = 0;
        for (; i < text.length() && out.length() < max; i++) {
            char c = text.charAt(i);
            if (c < 0x20 || c == 0x7F) {
                out.append(String.format("\\x%02x", (int) c));
            } else if (Character.isISOControl(c) || c == '\u2028' || c == '\u2029' || Character.isSurrogate(c)) {
                out.append(String.format("\\u%04x", (int) c));
            } else {
                out.append(c);
            }
        }
        return i < text.length() ? out + "..." : out.toString();
    }
}
