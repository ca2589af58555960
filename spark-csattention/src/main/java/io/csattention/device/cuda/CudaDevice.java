package io.csattention.device.cuda;

import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdevice_attribute;
import jcuda.driver.CUfunction;
import jcuda.driver.CUmodule;
import jcuda.driver.CUresult;
import jcuda.driver.CUstream;
import jcuda.driver.JCudaDriver;

import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * One CUDA device of this JVM through the driver API: its primary context (one per device per JVM, shared with any
 * other CUDA library in the process), the PTX modules loaded with {@code cuModuleLoadData}, and their functions,
 * looked up once. Opening probes step by step so that a missing driver library, a missing device or a driver too old
 * for the PTX each end in a {@link CudaUnavailableException} with a short reason, never in a JVM crash.
 */
final class CudaDevice {

    private static final Map<Integer, Object> DEVICES = new ConcurrentHashMap<>();
    private static volatile String driverFailure;

    private final int ordinal;
    private final CUcontext context;
    private final String name;
    private final int driverVersion;
    private final int multiprocessors;
    private final long totalMemory;
    private final PtxModules ptx;
    private final Map<String, CudaFunction> kernels = new HashMap<>();

    private CudaDevice(int ordinal, CUcontext context, String name, int driverVersion,
                       int multiprocessors, long totalMemory, PtxModules ptx) {
        this.ordinal = ordinal;
        this.context = context;
        this.name = name;
        this.driverVersion = driverVersion;
        this.multiprocessors = multiprocessors;
        this.totalMemory = totalMemory;
        this.ptx = ptx;
    }

    /** The device of this ordinal, opened once per JVM; a failure is remembered and thrown again. */
    static CudaDevice open(int ordinal) {
        Object known = DEVICES.computeIfAbsent(ordinal, o -> {
            try {
                return probe(o);
            } catch (CudaUnavailableException e) {
                return e;
            } catch (IllegalStateException | java.io.UncheckedIOException e) {
                // a failing driver call or missing PTX resources while probing: the device is not usable
                return new CudaUnavailableException(e.getMessage());
            }
        });
        if (known instanceof CudaUnavailableException e) {
            throw new CudaUnavailableException(e.getMessage());
        }
        return (CudaDevice) known;
    }

    private static CudaDevice probe(int ordinal) {
        initDriver();
        int[] count = new int[1];
        int result = JCudaDriver.cuDeviceGetCount(count);
        if (result != CUresult.CUDA_SUCCESS) {
            throw new CudaUnavailableException("cuDeviceGetCount failed: " + CUresult.stringFor(result));
        }
        if (count[0] == 0) {
            throw new CudaUnavailableException("no CUDA device");
        }
        if (ordinal >= count[0]) {
            throw new CudaUnavailableException("no CUDA device with ordinal " + ordinal + " (devices: " + count[0]
                    + ")");
        }
        int[] version = new int[1];
        Cuda.check(JCudaDriver.cuDriverGetVersion(version), "cuDriverGetVersion");
        PtxModules ptx = PtxModules.load();
        if (version[0] < ptx.minimumDriverVersion()) {
            throw new CudaUnavailableException(driverTooOld(version[0], ptx));
        }
        CUdevice device = new CUdevice();
        Cuda.check(JCudaDriver.cuDeviceGet(device, ordinal), "cuDeviceGet(" + ordinal + ")");
        byte[] nameBytes = new byte[256];
        Cuda.check(JCudaDriver.cuDeviceGetName(nameBytes, nameBytes.length, device), "cuDeviceGetName");
        int length = 0;
        while (length < nameBytes.length && nameBytes[length] != 0) {
            length++;
        }
        int[] sms = new int[1];
        Cuda.check(JCudaDriver.cuDeviceGetAttribute(sms, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
                device), "cuDeviceGetAttribute(MULTIPROCESSOR_COUNT)");
        long[] memory = new long[1];
        Cuda.check(JCudaDriver.cuDeviceTotalMem(memory, device), "cuDeviceTotalMem");
        CUcontext context = new CUcontext();
        result = JCudaDriver.cuDevicePrimaryCtxRetain(context, device);
        if (result != CUresult.CUDA_SUCCESS) {
            throw new CudaUnavailableException("cannot create a context on CUDA device " + ordinal + ": "
                    + CUresult.stringFor(result));
        }
        CudaDevice opened = new CudaDevice(ordinal, context,
                new String(nameBytes, 0, length, StandardCharsets.US_ASCII), version[0], sms[0], memory[0], ptx);
        opened.loadModules();
        return opened;
    }

    /** Loads the JCuda driver binding and calls {@code cuInit}, once per JVM. */
    private static synchronized void initDriver() {
        if (driverFailure != null) {
            throw new CudaUnavailableException(driverFailure);
        }
        try {
            int result = JCudaDriver.cuInit(0);
            if (result == CUresult.CUDA_ERROR_NO_DEVICE) {
                driverFailure = "no CUDA device";
            } else if (result != CUresult.CUDA_SUCCESS) {
                driverFailure = "cuInit failed: " + CUresult.stringFor(result);
            }
        } catch (UnsatisfiedLinkError e) {
            driverFailure = describeLinkFailure(e);
        } catch (NoClassDefFoundError e) {
            driverFailure = "the JCuda driver binding could not be initialised earlier in this JVM ("
                    + e.getMessage() + ")";
        }
        if (driverFailure != null) {
            throw new CudaUnavailableException(driverFailure);
        }
    }

    /** JCuda's link error holds nested stack traces; the user needs the library that was missing. */
    static String describeLinkFailure(UnsatisfiedLinkError e) {
        String message = String.valueOf(e.getMessage());
        for (String line : message.split("\n")) {
            int at = line.indexOf("libcuda.so");
            if (at >= 0) {
                String detail = line.substring(at).trim();
                return "no CUDA driver library (" + detail + ")";
            }
        }
        return "the JCuda native library could not be loaded (" + message.lines().findFirst().orElse("") + ")";
    }

    static String driverTooOld(int version, PtxModules ptx) {
        return "CUDA driver too old for the PTX: the driver supports CUDA " + PtxModules.cudaVersion(version)
                + ", the PTX (ISA " + ptx.isa() + ") needs CUDA " + PtxModules.cudaVersion(ptx.minimumDriverVersion())
                + " (Linux driver " + ptx.minimumLinuxDriver() + " or newer)";
    }

    private void loadModules() {
        makeCurrent();
        for (String module : ptx.modules()) {
            CUmodule loaded = new CUmodule();
            int result = JCudaDriver.cuModuleLoadData(loaded, ptx.ptx(module));
            if (result == CUresult.CUDA_ERROR_UNSUPPORTED_PTX_VERSION) {
                throw new CudaUnavailableException(driverTooOld(driverVersion, ptx));
            }
            if (result != CUresult.CUDA_SUCCESS) {
                throw new CudaUnavailableException("loading PTX module " + module + " failed: "
                        + CUresult.stringFor(result));
            }
            for (String function : PtxFunction.functionsOf(module)) {
                CUfunction handle = new CUfunction();
                Cuda.check(JCudaDriver.cuModuleGetFunction(handle, loaded, function),
                        "cuModuleGetFunction(" + module + "." + function + ")");
                kernels.put(function, new CudaFunction(function, handle));
            }
        }
    }

    /** Binds this device's context to the calling thread; every entry point calls it first. */
    void makeCurrent() {
        Cuda.check(JCudaDriver.cuCtxSetCurrent(context), "cuCtxSetCurrent(device " + ordinal + ")");
    }

    CudaFunction kernel(PtxFunction kernel) {
        CudaFunction found = kernels.get(kernel.function());
        if (found == null) {
            throw new IllegalStateException("kernel " + kernel.function() + " is not in the loaded PTX modules");
        }
        return found;
    }

    CUstream newStream() {
        makeCurrent();
        CUstream stream = new CUstream();
        Cuda.check(JCudaDriver.cuStreamCreate(stream, jcuda.driver.CUstream_flags.CU_STREAM_DEFAULT),
                "cuStreamCreate");
        return stream;
    }

    int ordinal() {
        return ordinal;
    }

    String name() {
        return name;
    }

    int driverVersion() {
        return driverVersion;
    }

    int multiprocessors() {
        return multiprocessors;
    }

    long totalMemory() {
        return totalMemory;
    }

    PtxModules ptx() {
        return ptx;
    }
}
