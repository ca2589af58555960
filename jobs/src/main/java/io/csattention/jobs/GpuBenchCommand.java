package io.csattention.jobs;

import io.csattention.device.cuda.GpuBench;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.util.concurrent.Callable;

/** {@code gpu-bench}: the GPU timing table (see {@link GpuBench}); kernels/device-check.sh runs the same class. */
@Command(name = "gpu-bench", mixinStandardHelpOptions = true,
        description = "Times index build and decode (us per query) of GPU csattention, GPU full attention and CPU "
                + "csattention on synthetic contexts, with the decode's bandwidth against the card's copy bandwidth.")
final class GpuBenchCommand implements Callable<Integer> {

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Mixin
    DeviceOption device;

    @Option(names = "--tokens", split = ",", paramLabel = "N[,N...]", defaultValue = "32768,131072",
            description = "Context lengths. Default: ${DEFAULT-VALUE}.")
    int[] tokens;

    @Option(names = "--head-dim", defaultValue = "128", description = "Head dimension d. Default: ${DEFAULT-VALUE}.")
    int dim;

    @Option(names = "--queries", defaultValue = "64", description = "Queries per block. Default: ${DEFAULT-VALUE}.")
    int queries;

    @Option(names = "--repetitions", defaultValue = "5",
            description = "Timed blocks per measurement (median). Default: ${DEFAULT-VALUE}.")
    int repetitions;

    @Option(names = "--sparsity", defaultValue = "0.95", description = "Default: ${DEFAULT-VALUE}.")
    double sparsity;

    @Option(names = "--prefill-queries", defaultValue = "4096",
            description = "Prefill queries per context. Default: ${DEFAULT-VALUE}.")
    int prefillQueries;

    @Option(names = "--centroids", defaultValue = "256", description = "C per subspace. Default: ${DEFAULT-VALUE}.")
    int centroids;

    @Option(names = "--seed", defaultValue = "42", description = "Default: ${DEFAULT-VALUE}.")
    long seed;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        GpuBench.run(new GpuBench.Config(tokens, dim, queries, repetitions, sparsity, prefillQueries, centroids, seed,
                device.mode(), device.gpuOrdinal()), out);
        return 0;
    }
}
