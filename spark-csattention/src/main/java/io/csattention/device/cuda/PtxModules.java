package io.csattention.device.cuda;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.Properties;

/**
 * The PTX the kernels module packages under {@value #RESOURCE_ROOT} (one file per {@code kernels/src/*.cu}) and the
 * {@code kernels.properties} next to it, which records the PTX ISA and the driver it needs.
 */
public final class PtxModules {

    static final String RESOURCE_ROOT = "io/csattention/kernels/";

    private final Properties properties;

    private PtxModules(Properties properties) {
        this.properties = properties;
    }

    /** Reads {@code kernels.properties} from the class path. */
    public static PtxModules load() {
        Properties properties = new Properties();
        try (InputStream in = resource("kernels.properties")) {
            properties.load(in);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return new PtxModules(properties);
    }

    /** The PTX ISA version the modules were compiled to, e.g. {@code 9.0}. */
    public String isa() {
        return properties.getProperty("ptx.isa", "?");
    }

    /** The virtual architecture, e.g. {@code sm_75}. */
    public String target() {
        return properties.getProperty("ptx.target", "?");
    }

    /** The smallest {@code cuDriverGetVersion()} that can JIT the PTX (1000 * major + 10 * minor). */
    public int minimumDriverVersion() {
        return Integer.parseInt(properties.getProperty("driver.minimum", "0").trim());
    }

    /** The Linux driver branch that goes with {@link #minimumDriverVersion()}, e.g. {@code 580}. */
    public String minimumLinuxDriver() {
        return properties.getProperty("driver.minimum.linux", "?");
    }

    /** The module names: {@code attention}, {@code decode}, {@code forward}, {@code prefill}. */
    public java.util.List<String> modules() {
        return java.util.Arrays.stream(properties.getProperty("modules", "").split(","))
                .map(String::trim).filter(s -> !s.isEmpty()).toList();
    }

    /** The PTX text of a module, NUL-terminated as {@code cuModuleLoadData} wants it. */
    public byte[] ptx(String module) {
        try (InputStream in = resource(module + ".ptx")) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            in.transferTo(out);
            out.write(0);
            return out.toByteArray();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** CUDA version text of a driver version number: 13000 -> 13.0. */
    static String cudaVersion(int version) {
        return (version / 1000) + "." + (version % 1000) / 10;
    }

    private static InputStream resource(String name) throws IOException {
        InputStream in = PtxModules.class.getClassLoader().getResourceAsStream(RESOURCE_ROOT + name);
        if (in == null) {
            throw new IOException("class-path resource " + RESOURCE_ROOT + name
                    + " is missing (is csattention-kernels on the class path?)");
        }
        return in;
    }
}
