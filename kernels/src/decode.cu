// Sparse decode kernels for a block of queries against one indexed context, on the algorithm of
// io.csattention.core.CSAttentionSelector: nearest centroid per subspace; the chosen lists, in their packed decode
// form (PackedLists: per entry a 16-bit key offset within its block of 65,536 keys and a signed 8-bit score in units
// over the list's missing-score estimate), summed as integers per key, a key met in no list summing to 0; the best
// candidates by that sum (ties to the lower key); their re-scoring q . k over the int8 key sketch (KeySketch:
// scale * sum of q_i * code_i); the best `chosen` of them (ties to the lower key); and the sink/window part of the
// selection. The integer stage is exact, so it selects the CPU's candidates bit for bit whatever order the atomics
// add in; the re-scoring is float and differs from the CPU's only by the order of its sum.

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

// Grid (ceil(m*L/block), queries), one thread per entry of the query's m chosen lists: adds the entry's units to
// sums[q*n + id] (zeroed before) when id is in [from, to). Packed lists (PackedLists): entries [list*L, (list+1)*L),
// block b of list `list` starting at starts[list*blocks + b], key id = (b << 16) + offsets[entry]. Integer atomics
// add in any order to the same sums, so the subspaces of all queries go in one launch.
extern "C" __global__ void accumulate_lists(const int* lists, int m, const int* starts, int blocks,
                                            const unsigned short* offsets, const signed char* units, int listLength,
                                            int from, int to, int* sums, int n) {
    int q = blockIdx.y;
    long long r = (long long) blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= (long long) m * listLength) {
        return;
    }
    int j = (int) (r / listLength);
    long long list = lists[q * m + j];
    long long entry = list * listLength + (r - (long long) j * listLength);
    const int* listStarts = starts + list * blocks;
    // the entry's block: the last b whose start is at or before the entry (empty blocks share their start)
    int low = 0;
    int high = blocks - 1;
    while (low < high) {
        int mid = (low + high + 1) >> 1;
        if (listStarts[mid] <= entry) {
            low = mid;
        } else {
            high = mid - 1;
        }
    }
    int id = (low << 16) + offsets[entry];
    if (id >= from && id < to) {
        atomicAdd(sums + (long long) q * n + id, (int) units[entry]);
    }
}

// One block per query: out[q*outStride + outOffset + 0 .. k) = the ids of the best k of sums[q*n + from .. to)
// (larger sum, then lower id), ascending, as CSAttentionSelector's cut by sums.
extern "C" __global__ void top_k_sums(const int* sums, int n, int from, int to, int k, int* out, int outStride,
                                      int outOffset) {
    long long q = blockIdx.x;
    csa_block_top_k_keys(CsaSumKeys{sums + q * n + from}, nullptr, from, to - from, k,
                         out + q * outStride + outOffset, nullptr, nullptr);
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

// Grid (ceil(count/warpsPerBlock), queries), one warp per candidate: exact[q*count + c] = scales[id] * (q . codes[id])
// with id = ids[q*count + c], over the int8 key sketch [n, dim] (KeySketch; VectorKernels.dotSelectedCodes).
extern "C" __global__ void rescore_codes(const float* queries, const signed char* codes, const float* scales, int dim,
                                         const int* ids, int count, float* exact) {
    int q = blockIdx.y;
    int warpsPerBlock = blockDim.x >> 5;
    int c = blockIdx.x * warpsPerBlock + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (c >= count) {
        return;
    }
    int id = ids[(long long) q * count + c];
    const float* query = queries + (long long) q * dim;
    const signed char* code = codes + (long long) id * dim;
    float sum = 0.0f;
    for (int t = lane; t < dim; t += 32) {
        sum = fmaf(query[t], (float) code[t], sum);
    }
    for (int o = 16; o > 0; o >>= 1) {
        sum += __shfl_down_sync(CSA_FULL_MASK, sum, o);
    }
    if (lane == 0) {
        exact[(long long) q * count + c] = sum * scales[id];
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
