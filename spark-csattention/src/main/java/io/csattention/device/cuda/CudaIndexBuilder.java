package io.csattention.device.cuda;

import io.csattention.core.CSAttentionIndex;
import io.csattention.core.IndexBuilder;
import io.csattention.core.IndexTables;
import io.csattention.core.CSAttentionSettings;
import io.csattention.core.Check;
import io.csattention.core.FloatMatrix;
import io.csattention.core.KMeans;
import io.csattention.kernel.Kernels;
import io.csattention.kernel.VectorKernels;
import jcuda.Pointer;
import jcuda.Sizeof;
import jcuda.driver.JCudaDriver;

/**
 * The index build of one KV head on the GPU, step for step the CPU build ({@code IndexBuilder.build}): the same
 * prefill-query sample, the same k-means++ starting centroids (computed on the CPU), Lloyd iterations on the GPU
 * (assignment and update kernels; empty clusters re-seeded on the host in cluster order, as {@code KMeans} does),
 * then per subspace the centroid x key partial scores and the sorted top-L lists with floors and estimates.
 */
final class CudaIndexBuilder implements AutoCloseable {

    private static final int LIST_THREADS = 1024;

    private final CudaDevice device;
    private final CudaStream stream;
    private final DeviceBuffer keys = new DeviceBuffer("keys");
    private final DeviceBuffer points = new DeviceBuffer("k-means points");
    private final DeviceBuffer subspaceCentroids = new DeviceBuffer("k-means centroids");
    private final DeviceBuffer assignment = new DeviceBuffer("k-means assignment");
    private final DeviceBuffer distance = new DeviceBuffer("k-means distance");
    private final DeviceBuffer counts = new DeviceBuffer("k-means counts");
    private final DeviceBuffer changed = new DeviceBuffer("k-means changed flag");
    private final DeviceBuffer centroids = new DeviceBuffer("centroids");
    private final DeviceBuffer scores = new DeviceBuffer("centroid x key scores");
    private final DeviceBuffer scratchIds = new DeviceBuffer("list sort ids");
    private final DeviceBuffer scratchScores = new DeviceBuffer("list sort scores");
    private final DeviceBuffer listIds = new DeviceBuffer("list ids");
    private final DeviceBuffer listScores = new DeviceBuffer("list scores");
    private final DeviceBuffer floors = new DeviceBuffer("floors");
    private final DeviceBuffer missing = new DeviceBuffer("missing estimates");

    CudaIndexBuilder(CudaDevice device) {
        this.device = device;
        this.stream = new CudaStream(device);
    }

    CSAttentionIndex build(FloatMatrix keyMatrix, FloatMatrix prefillQueries, CSAttentionSettings settings) {
        IndexBuilder.Geometry g = IndexBuilder.Geometry.of(keyMatrix, prefillQueries, settings);
        int n = g.keys();
        int d = g.dim();
        int m = g.subspaces();
        int width = g.width();
        Check.that(width * PtxFunction.CENTROID_TILE * Sizeof.FLOAT <= 48 * 1024,
                "subspace width must be <= 384 on the GPU (raise --subspaces)", "width", width);
        int listLength = g.listLength();
        int[] sample = g.sample();
        int c = g.centroids();
        VectorKernels cpu = Kernels.preferred();

        float[] trained = new float[m * c * width];
        for (int j = 0; j < m; j++) {
            long seed = settings.seed() + 1_000_003L * j;
            float[] start = KMeans.initialCentroids(cpu, prefillQueries.data(), d, j * width, width, sample, c, seed);
            float[] subspace = c == sample.length ? start
                    : lloyd(KMeans.gather(prefillQueries.data(), d, j * width, width, sample), sample.length, width,
                    start, c, settings.kmeansIterations());
            System.arraycopy(subspace, 0, trained, j * c * width, c * width);
        }

        int lists = m * c;
        int padded = listLength == 1 ? 1 : Integer.highestOneBit(listLength - 1) << 1;
        keys.upload(keyMatrix.data(), n * d);
        centroids.upload(trained, trained.length);
        scores.ensureFloats((long) c * n);
        scratchIds.ensureInts((long) c * padded);
        scratchScores.ensureFloats((long) c * padded);
        listIds.ensureInts((long) lists * listLength);
        listScores.ensureFloats((long) lists * listLength);
        floors.ensureFloats(lists);
        missing.ensureFloats(lists);
        int missingMode = switch (settings.missingScore()) {
            case FLOOR -> 0;
            case MEAN_BELOW_FLOOR -> 1;
            case ZERO -> 2;
        };
        CudaFunction partialScores = device.kernel(PtxFunction.CENTROID_KEY_SCORES);
        CudaFunction buildLists = device.kernel(PtxFunction.BUILD_LISTS);
        for (int j = 0; j < m; j++) {
            partialScores.launch(stream, Cuda.blocks(n, 256), Cuda.blocks(c, PtxFunction.CENTROID_TILE), 256,
                    PtxFunction.CENTROID_TILE * width * Sizeof.FLOAT, centroids.atFloat((long) j * c * width), c, width,
                    keys, n, d, j * width, scores);
            buildLists.launch(stream, c, 1, LIST_THREADS, 0, scores, n, listLength, padded, j * c, missingMode,
                    scratchIds, scratchScores, listIds, listScores, floors, missing);
        }
        stream.synchronize();
        int[] ids = new int[lists * listLength];
        float[] kept = new float[lists * listLength];
        float[] floorValues = new float[lists];
        float[] estimates = new float[lists];
        listIds.download(ids, ids.length);
        listScores.download(kept, kept.length);
        floors.download(floorValues, lists);
        missing.download(estimates, lists);
        return new CSAttentionIndex(IndexTables.withoutRope(g.shape(settings), trained, ids, kept, floorValues,
                estimates));
    }

    /** Lloyd iterations of one subspace from the given start, as {@code KMeans.train} runs them. */
    private float[] lloyd(float[] hostPoints, int n, int width, float[] start, int k, int iterations) {
        float[] result = start.clone();
        points.upload(hostPoints, n * width);
        subspaceCentroids.upload(result, k * width);
        assignment.ensureInts(n);
        distance.ensureFloats(n);
        counts.ensureInts(k);
        changed.ensureInts(1);
        Cuda.check(JCudaDriver.cuMemsetD32Async(assignment.pointer(), 0, n, stream.handle()),
                "cuMemsetD32Async(k-means assignment)");
        int updateThreads = width <= 256 ? (256 / width) * width : width;
        Check.that(updateThreads <= 1024, "subspace width must be <= 1024 on the GPU", "width", width);
        CudaFunction assign = device.kernel(PtxFunction.KMEANS_ASSIGN);
        CudaFunction update = device.kernel(PtxFunction.KMEANS_UPDATE);
        int[] hostCounts = new int[k];
        int[] flag = new int[1];
        for (int iteration = 0; iteration < iterations; iteration++) {
            Cuda.check(JCudaDriver.cuMemsetD32Async(changed.pointer(), 0, 1, stream.handle()),
                    "cuMemsetD32Async(k-means changed flag)");
            assign.launch(stream, Cuda.blocks(n, 256), 1, 256, 0, points, n, width, subspaceCentroids, k, assignment,
                    distance, changed);
            update.launch(stream, k, 1, updateThreads, updateThreads * Sizeof.DOUBLE, points, n, width, assignment,
                    k, subspaceCentroids, counts);
            stream.synchronize();
            counts.download(hostCounts, k);
            changed.download(flag, 1);
            reseedEmpty(hostPoints, n, width, k, hostCounts);
            if (flag[0] == 0 && iteration > 0) {
                break;
            }
        }
        subspaceCentroids.download(result, k * width);
        return result;
    }

    /** Empty clusters take, in cluster order, the point farthest from its centroid (as {@code KMeans} does). */
    private void reseedEmpty(float[] hostPoints, int n, int width, int k, int[] hostCounts) {
        boolean anyEmpty = false;
        for (int count : hostCounts) {
            anyEmpty |= count == 0;
        }
        if (!anyEmpty) {
            return;
        }
        float[] hostDistance = new float[n];
        int[] hostAssignment = new int[n];
        distance.download(hostDistance, n);
        assignment.download(hostAssignment, n);
        for (int cluster = 0; cluster < k; cluster++) {
            if (hostCounts[cluster] != 0) {
                continue;
            }
            int farthest = 0;
            for (int i = 1; i < n; i++) {
                if (hostDistance[i] > hostDistance[farthest]) {
                    farthest = i;
                }
            }
            float[] point = java.util.Arrays.copyOfRange(hostPoints, farthest * width, (farthest + 1) * width);
            Cuda.check(JCudaDriver.cuMemcpyHtoD(subspaceCentroids.atFloat((long) cluster * width), Pointer.to(point),
                    (long) width * Sizeof.FLOAT), "cuMemcpyHtoD(re-seeded centroid)");
            hostDistance[farthest] = 0;
            hostAssignment[farthest] = cluster;
        }
        distance.upload(hostDistance, n);
        assignment.upload(hostAssignment, n);
    }

    @Override
    public void close() {
        for (DeviceBuffer buffer : new DeviceBuffer[] {keys, points, subspaceCentroids, assignment, distance, counts,
                changed, centroids, scores, scratchIds, scratchScores, listIds, listScores, floors, missing}) {
            buffer.close();
        }
        stream.close();
    }
}
