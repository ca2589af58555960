package io.csattention.format;

import java.io.IOException;

/**
 * An index file that cannot be read: the base of the typed failures of {@link IndexFile}. The message always starts
 * with the file's name.
 */
public class IndexFileException extends IOException {

    private final String file;

    public IndexFileException(String file, String problem) {
        super(file + ": " + problem);
        this.file = file;
    }

    /** The name of the file (or stream) that was being read. */
    public String file() {
        return file;
    }

    /** The bytes are not an index file, or are damaged: bad magic, format name, checksum, truncation, bad sizes. */
    public static final class Corrupt extends IndexFileException {
        public Corrupt(String file, String problem) {
            super(file, "corrupt index file: " + problem);
        }
    }

    /** The file was written by an older format version than this reader accepts. */
    public static final class TooOld extends IndexFileException {
        private final int version;

        public TooOld(String file, int version, int minVersion, int maxVersion) {
            super(file, "index format version " + version + " is too old; this reader accepts versions "
                    + minVersion + " to " + maxVersion + " (rebuild the index)");
            this.version = version;
        }

        public int version() {
            return version;
        }
    }

    /** The file was written by a newer format version than this reader accepts. */
    public static final class TooNew extends IndexFileException {
        private final int version;

        public TooNew(String file, int version, int minVersion, int maxVersion) {
            super(file, "index format version " + version + " is too new; this reader accepts versions "
                    + minVersion + " to " + maxVersion + " (upgrade csattention-spark)");
            this.version = version;
        }

        public int version() {
            return version;
        }
    }
}
