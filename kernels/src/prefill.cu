// Prefill (index build) kernels of one KV head, one subspace at a time: k-means assignment and centroid update over
// the prefill-query sample, centroid x key partial scores, and per-centroid top-L lists with floors and the estimate
// used for absent keys. Semantics follow io.csattention.core.KMeans and CSAttentionIndex.build.

#include "common.cuh"

// assignment[i] = nearest centroid of point i (squared L2, lowest index on ties), distance[i] = that distance;
// *changed is set to 1 when any assignment moved. Points [n, width], centroids [k, width].
extern "C" __global__ void kmeans_assign(const float* points, int n, int width, const float* centroids, int k,
                                         int* assignment, float* distance, int* changed) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) {
        return;
    }
    const float* p = points + (long long) i * width;
    int best = 0;
    float bestDistance = CUDART_INF_F;
    for (int c = 0; c < k; c++) {
        const float* centroid = centroids + (long long) c * width;
        float sum = 0.0f;
        for (int t = 0; t < width; t++) {
            float diff = p[t] - centroid[t];
            sum = fmaf(diff, diff, sum);
        }
        if (sum < bestDistance) {
            bestDistance = sum;
            best = c;
        }
    }
    if (assignment[i] != best) {
        assignment[i] = best;
        *changed = 1;
    }
    distance[i] = bestDistance;
}

// One block per centroid c: counts[c] = points assigned to c, and, when non-empty, centroid c = their mean (summed
// in double). Empty clusters are left to the host, which re-seeds them in cluster order as the CPU build does.
extern "C" __global__ void kmeans_update(const float* points, int n, int width, const int* assignment, int k,
                                         float* centroids, int* counts) {
    CSA_DYNAMIC_SHARED(double, partial);  // [blockDim.x]
    __shared__ int countShared;
    int c = blockIdx.x;
    int lanes = blockDim.x / width;  // threads t < lanes*width: dimension t % width, point stripe t / width
    int t = threadIdx.x;
    int dimension = t % width;
    int stripe = t / width;
    double sum = 0.0;
    int count = 0;
    if (stripe < lanes) {
        for (int i = stripe; i < n; i += lanes) {
            if (assignment[i] == c) {
                sum += (double) points[(long long) i * width + dimension];
                count++;
            }
        }
    }
    partial[t] = sum;
    if (t == 0) {
        countShared = 0;
    }
    __syncthreads();
    if (dimension == 0 && stripe < lanes) {
        atomicAdd(&countShared, count);
    }
    __syncthreads();
    if (t < width) {
        double total = 0.0;
        for (int s = 0; s < lanes; s++) {
            total += partial[s * width + t];
        }
        if (countShared > 0) {
            centroids[(long long) c * width + t] = (float) (total / countShared);
        }
    }
    if (t == 0) {
        counts[c] = countShared;
    }
}

// scores[c, i] = <centroid c, keys[i, colOff .. colOff+width)> for c in [0, k), i in [0, n). Grid: (ceil(n/block),
// ceil(k/CENTROID_TILE)); the block's tile of centroids is staged in shared memory.
#define CENTROID_TILE 32
extern "C" __global__ void centroid_key_scores(const float* centroids, int k, int width, const float* keys, int n,
                                               int dim, int colOff, float* scores) {
    CSA_DYNAMIC_SHARED(float, tile);  // [CENTROID_TILE, width]
    int firstCentroid = blockIdx.y * CENTROID_TILE;
    int tileCount = min(CENTROID_TILE, k - firstCentroid);
    for (int x = threadIdx.x; x < tileCount * width; x += blockDim.x) {
        tile[x] = centroids[(long long) firstCentroid * width + x];
    }
    __syncthreads();
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) {
        return;
    }
    const float* key = keys + (long long) i * dim + colOff;
    for (int c = 0; c < tileCount; c++) {
        float sum = 0.0f;
        for (int t = 0; t < width; t++) {
            sum = fmaf(tile[c * width + t], __ldg(key + t), sum);
        }
        scores[(long long) (firstCentroid + c) * n + i] = sum;
    }
}

// One block per list (centroid c of this subspace): keeps the L largest of scores[c, 0 .. n) (ties: lowest key id),
// sorted by descending score (ties: ascending id), writes them to listIds/listScores [lists, L] at row firstList + c,
// the floor (smallest kept score) and the estimate for absent keys (missingMode 0 floor, 1 mean below the floor,
// 2 zero). scratchIds/scratchScores: [k, padded] with padded a power of two >= L.
extern "C" __global__ void build_lists(const float* scores, int n, int listLength, int padded, int firstList,
                                       int missingMode, int* scratchIds, float* scratchScores, int* listIds,
                                       float* listScores, float* floors, float* missing) {
    __shared__ double sumScratch[32];
    int c = blockIdx.x;
    const float* row = scores + (long long) c * n;
    int* ids = scratchIds + (long long) c * padded;
    float* kept = scratchScores + (long long) c * padded;
    csa_block_top_k(row, nullptr, 0, n, listLength, ids, kept);
    for (int r = listLength + threadIdx.x; r < padded; r += blockDim.x) {
        ids[r] = INT_MAX;
        kept[r] = -CUDART_INF_F;
    }
    __syncthreads();
    // bitonic sort of the padded list, best first
    for (int size = 2; size <= padded; size <<= 1) {
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            for (int a = threadIdx.x; a < padded; a += blockDim.x) {
                int b = a ^ stride;
                if (b > a) {
                    float sa = kept[a];
                    float sb = kept[b];
                    int ia = ids[a];
                    int ib = ids[b];
                    bool bestFirst = (a & size) == 0;
                    bool swap = bestFirst ? csa_better(sb, ib, sa, ia) : csa_better(sa, ia, sb, ib);
                    if (swap) {
                        kept[a] = sb;
                        kept[b] = sa;
                        ids[a] = ib;
                        ids[b] = ia;
                    }
                }
            }
            __syncthreads();
        }
    }
    long long list = firstList + c;
    double total = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        total += (double) row[i];
    }
    double keptTotal = 0.0;
    for (int r = threadIdx.x; r < listLength; r += blockDim.x) {
        listIds[list * listLength + r] = ids[r];
        listScores[list * listLength + r] = kept[r];
        keptTotal += (double) kept[r];
    }
    total = csa_block_sum(total, sumScratch);
    keptTotal = csa_block_sum(keptTotal, sumScratch);
    if (threadIdx.x == 0) {
        float floor = kept[listLength - 1];
        floors[list] = floor;
        float estimate = floor;
        if (missingMode == 1 && n > listLength) {
            estimate = (float) ((total - keptTotal) / (n - listLength));
        } else if (missingMode == 2) {
            estimate = 0.0f;
        }
        missing[list] = estimate;
    }
}
