// Sparse decode kernels for a block of queries against one indexed context: nearest centroid per subspace,
// gather-and-sum of the chosen lists into a per-query score buffer, top-k selection (candidates, then the exact
// re-scoring's best), and the sink/window part of the selection. Semantics follow io.csattention.core
// .CSAttentionSelector: a touched key accumulates (list score - list estimate) over subspaces in order; untouched
// keys keep -inf, so the top-k takes them only when fewer keys were touched than wanted, lowest ids first.

#include "common.cuh"

// Grid (m, queries), one block per (subspace j, query q): lists[q*m + j] = j*C + the centroid of subspace j with the
// largest inner product with q's sub-vector (useL2 != 0: the smallest squared L2 distance); lowest index on ties.
extern "C" __global__ void nearest_centroids(const float* queries, int dim, int m, int centroidCount,
                                             const float* centroids, int useL2, int* lists) {
    __shared__ float bestValues[1024];
    __shared__ int bestIndices[1024];
    int j = blockIdx.x;
    int q = blockIdx.y;
    int width = dim / m;
    const float* sub = queries + (long long) q * dim + j * width;
    float best = -CUDART_INF_F;
    int bestIndex = INT_MAX;
    for (int c = threadIdx.x; c < centroidCount; c += blockDim.x) {
        const float* centroid = centroids + ((long long) j * centroidCount + c) * width;
        float value = 0.0f;
        for (int t = 0; t < width; t++) {
            if (useL2) {
                float diff = sub[t] - centroid[t];
                value = fmaf(diff, diff, value);
            } else {
                value = fmaf(sub[t], centroid[t], value);
            }
        }
        if (useL2) {
            value = -value;
        }
        if (value > best || bestIndex == INT_MAX) {
            best = value;
            bestIndex = c;
        }
    }
    bestValues[threadIdx.x] = best;
    bestIndices[threadIdx.x] = bestIndex;
    __syncthreads();
    for (int half = blockDim.x >> 1; half > 0; half >>= 1) {
        if (threadIdx.x < half) {
            float other = bestValues[threadIdx.x + half];
            int otherIndex = bestIndices[threadIdx.x + half];
            if (otherIndex != INT_MAX && csa_better(other, otherIndex, bestValues[threadIdx.x],
                                                    bestIndices[threadIdx.x])) {
                bestValues[threadIdx.x] = other;
                bestIndices[threadIdx.x] = otherIndex;
            }
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        lists[q * m + j] = j * centroidCount + (bestIndices[0] == INT_MAX ? 0 : bestIndices[0]);
    }
}

// Grid (ceil(L/block), queries): adds subspace j's chosen list of every query into its score row [n] (initialised to
// -inf). Launched once per subspace, in order, so every key sums its subspaces in the order the CPU does; a key
// appears at most once per list, so no two threads of one launch touch the same score.
extern "C" __global__ void accumulate_list(const int* lists, int m, int j, const int* listIds,
                                           const float* listScores, const float* missing, int listLength, int from,
                                           int to, float* scores, int n) {
    int q = blockIdx.y;
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= listLength) {
        return;
    }
    long long list = lists[q * m + j];
    int id = listIds[list * listLength + r];
    if (id < from || id >= to) {
        return;
    }
    float delta = listScores[list * listLength + r] - missing[list];
    float* score = scores + (long long) q * n + id;
    float current = *score;
    *score = current == -CUDART_INF_F ? 0.0f + delta : current + delta;
}

// One block per row: out[row*outStride + outOffset + 0 .. k) = ids of the best k of
// scores[row*scoreStride + offset + 0 .. count), ascending; the id of position i is ids[row*idStride + i] when ids
// is given, idBase + i otherwise.
extern "C" __global__ void top_k_rows(const float* scores, long long scoreStride, int offset, const int* ids,
                                      int idStride, int idBase, int count, int k, int* out, int outStride,
                                      int outOffset) {
    long long row = blockIdx.x;
    csa_block_top_k(scores + row * scoreStride + offset, ids != nullptr ? ids + row * idStride : nullptr, idBase,
                    count, k, out + row * outStride + outOffset, nullptr);
}

// Grid (ceil(count/warpsPerBlock), queries), one warp per candidate: exact[q*count + c] = q . keys[ids[q*count + c]].
extern "C" __global__ void rescore(const float* queries, const float* keys, int dim, const int* ids, int count,
                                   float* exact) {
    int q = blockIdx.y;
    int warpsPerBlock = blockDim.x >> 5;
    int c = blockIdx.x * warpsPerBlock + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (c >= count) {
        return;
    }
    int id = ids[(long long) q * count + c];
    const float* query = queries + (long long) q * dim;
    const float* key = keys + (long long) id * dim;
    float sum = 0.0f;
    for (int t = lane; t < dim; t += 32) {
        sum = fmaf(query[t], key[t], sum);
    }
    for (int o = 16; o > 0; o >>= 1) {
        sum += __shfl_down_sync(CSA_FULL_MASK, sum, o);
    }
    if (lane == 0) {
        exact[(long long) q * count + c] = sum;
    }
}

// One block per query: selected[q*budget + 0 .. sink) = 0 .. sink, and the last window entries = n-window .. n.
extern "C" __global__ void sink_and_window(int* selected, int budget, int sink, int window, int n) {
    int* row = selected + (long long) blockIdx.x * budget;
    for (int i = threadIdx.x; i < sink; i += blockDim.x) {
        row[i] = i;
    }
    for (int i = threadIdx.x; i < window; i += blockDim.x) {
        row[budget - window + i] = n - window + i;
    }
}
