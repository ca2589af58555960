// Exact softmax attention (scale 1/sqrt(d)) for a block of queries over selected keys (the sparse decode) or over
// every key (the full-attention baseline), split over the keys like flash-decoding: each block reduces a chunk of keys
// to (max, sum of exp, exp-weighted value sum), and a second kernel combines the chunks. Semantics follow
// io.csattention.core.Attention: entries of the selection below zero are padding and are skipped.

#include "common.cuh"

// Grid (splits, queries), block of 32*w threads, dynamic shared memory (dim + chunk) floats. Keys of query q are
// selected[q*selectedStride + 0 .. count) when selected is given, 0 .. count otherwise; split s covers
// [s*chunk, min(count, (s+1)*chunk)). Writes partMax/partSum [queries, splits] and partAcc [queries, splits, dim].
extern "C" __global__ void attend_partial(const float* queries, const float* keys, const float* values, int dim,
                                          const int* selected, int selectedStride, int count, int chunk, float scale,
                                          float* partMax, float* partSum, float* partAcc) {
    CSA_DYNAMIC_SHARED(float, shared);
    float* query = shared;          // [dim]
    float* weights = shared + dim;  // [chunk]
    __shared__ float reduce[32];
    int split = blockIdx.x;
    int splits = gridDim.x;
    long long q = blockIdx.y;
    int first = split * chunk;
    int size = min(chunk, count - first);
    for (int t = threadIdx.x; t < dim; t += blockDim.x) {
        query[t] = queries[q * dim + t];
    }
    __syncthreads();
    int lane = threadIdx.x & 31;
    int warp = threadIdx.x >> 5;
    int warps = blockDim.x >> 5;
    const int* ids = selected != nullptr ? selected + q * selectedStride + first : nullptr;
    for (int j = warp; j < size; j += warps) {
        int id = ids != nullptr ? ids[j] : first + j;
        float score = -CUDART_INF_F;
        if (id >= 0) {
            const float* key = keys + (long long) id * dim;
            float sum = 0.0f;
            for (int t = lane; t < dim; t += 32) {
                sum = fmaf(query[t], key[t], sum);
            }
            for (int o = 16; o > 0; o >>= 1) {
                sum += __shfl_down_sync(CSA_FULL_MASK, sum, o);
            }
            score = sum * scale;
        }
        if (lane == 0) {
            weights[j] = score;
        }
    }
    __syncthreads();
    float localMax = -CUDART_INF_F;
    for (int j = threadIdx.x; j < size; j += blockDim.x) {
        localMax = fmaxf(localMax, weights[j]);
    }
    for (int o = 16; o > 0; o >>= 1) {
        localMax = fmaxf(localMax, __shfl_down_sync(CSA_FULL_MASK, localMax, o));
    }
    if (lane == 0) {
        reduce[warp] = localMax;
    }
    __syncthreads();
    float blockMax = -CUDART_INF_F;
    for (int w = 0; w < warps; w++) {
        blockMax = fmaxf(blockMax, reduce[w]);
    }
    __syncthreads();
    float localSum = 0.0f;
    for (int j = threadIdx.x; j < size; j += blockDim.x) {
        float w = weights[j] == -CUDART_INF_F ? 0.0f : expf(weights[j] - blockMax);
        weights[j] = w;
        localSum += w;
    }
    for (int o = 16; o > 0; o >>= 1) {
        localSum += __shfl_down_sync(CSA_FULL_MASK, localSum, o);
    }
    if (lane == 0) {
        reduce[warp] = localSum;
    }
    __syncthreads();
    long long part = q * splits + split;
    if (threadIdx.x == 0) {
        float total = 0.0f;
        for (int w = 0; w < warps; w++) {
            total += reduce[w];
        }
        partMax[part] = blockMax;
        partSum[part] = total;
    }
    for (int t = threadIdx.x; t < dim; t += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < size; j++) {
            float w = weights[j];
            if (w != 0.0f) {
                int id = ids != nullptr ? ids[j] : first + j;
                acc = fmaf(w, values[(long long) id * dim + t], acc);
            }
        }
        partAcc[part * dim + t] = acc;
    }
}

// Full attention for a block of queries that share one context: like attend_partial without a selection, but each
// thread block serves ATTEND_QUERY_TILE queries, so every K and V row it loads is used by all of them (K/V traffic
// divided by the tile). Grid (splits, ceil(queries / tile)), block of 128 threads (4 warps), dynamic shared memory
// (tile * (dim + chunk)) floats; writes the same partials as attend_partial for attend_combine.
#define ATTEND_QUERY_TILE 8
extern "C" __global__ void attend_all_tiled(const float* queries, int queryCount, const float* keys,
                                            const float* values, int dim, int count, int chunk, float scale,
                                            float* partMax, float* partSum, float* partAcc) {
    CSA_DYNAMIC_SHARED(float, shared);
    float* tileQueries = shared;                              // [tile, dim]
    float* weights = shared + ATTEND_QUERY_TILE * dim;        // [tile, chunk]
    int split = blockIdx.x;
    int splits = gridDim.x;
    int firstQuery = blockIdx.y * ATTEND_QUERY_TILE;
    int tileCount = min(ATTEND_QUERY_TILE, queryCount - firstQuery);
    int first = split * chunk;
    int size = min(chunk, count - first);
    for (int x = threadIdx.x; x < ATTEND_QUERY_TILE * dim; x += blockDim.x) {
        int q = x / dim;
        tileQueries[x] = q < tileCount ? queries[(long long) (firstQuery + q) * dim + x % dim] : 0.0f;
    }
    __syncthreads();
    int lane = threadIdx.x & 31;
    int warp = threadIdx.x >> 5;
    int warps = blockDim.x >> 5;
    for (int j = warp; j < size; j += warps) {
        const float* key = keys + (long long) (first + j) * dim;
        float sums[ATTEND_QUERY_TILE];
        for (int q = 0; q < ATTEND_QUERY_TILE; q++) {
            sums[q] = 0.0f;
        }
        for (int t = lane; t < dim; t += 32) {
            float k = key[t];
            for (int q = 0; q < ATTEND_QUERY_TILE; q++) {
                sums[q] = fmaf(tileQueries[q * dim + t], k, sums[q]);
            }
        }
        for (int q = 0; q < ATTEND_QUERY_TILE; q++) {
            float sum = sums[q];
            for (int o = 16; o > 0; o >>= 1) {
                sum += __shfl_down_sync(CSA_FULL_MASK, sum, o);
            }
            if (lane == 0) {
                weights[q * chunk + j] = sum * scale;
            }
        }
    }
    __syncthreads();
    // softmax pieces: warp w handles the tile's queries w, w + warps, ...
    for (int q = warp; q < ATTEND_QUERY_TILE; q += warps) {
        float* row = weights + q * chunk;
        float localMax = -CUDART_INF_F;
        for (int j = lane; j < size; j += 32) {
            localMax = fmaxf(localMax, row[j]);
        }
        for (int o = 16; o > 0; o >>= 1) {
            localMax = fmaxf(localMax, __shfl_down_sync(CSA_FULL_MASK, localMax, o));
        }
        localMax = __shfl_sync(CSA_FULL_MASK, localMax, 0);
        float localSum = 0.0f;
        for (int j = lane; j < size; j += 32) {
            float w = expf(row[j] - localMax);
            row[j] = w;
            localSum += w;
        }
        for (int o = 16; o > 0; o >>= 1) {
            localSum += __shfl_down_sync(CSA_FULL_MASK, localSum, o);
        }
        if (lane == 0 && q < tileCount) {
            long long part = (long long) (firstQuery + q) * splits + split;
            partMax[part] = localMax;
            partSum[part] = localSum;
        }
    }
    __syncthreads();
    for (int t = threadIdx.x; t < dim; t += blockDim.x) {
        float acc[ATTEND_QUERY_TILE];
        for (int q = 0; q < ATTEND_QUERY_TILE; q++) {
            acc[q] = 0.0f;
        }
        for (int j = 0; j < size; j++) {
            float v = values[(long long) (first + j) * dim + t];
            for (int q = 0; q < ATTEND_QUERY_TILE; q++) {
                acc[q] = fmaf(weights[q * chunk + j], v, acc[q]);
            }
        }
        for (int q = 0; q < tileCount; q++) {
            partAcc[((long long) (firstQuery + q) * splits + split) * dim + t] = acc[q];
        }
    }
}

// One block per query: out[q, :] = sum_s acc_s * exp(max_s - max) / sum_s sum_s * exp(max_s - max); zeros when the
// query attended no key.
extern "C" __global__ void attend_combine(const float* partMax, const float* partSum, const float* partAcc,
                                          int splits, int dim, float* out) {
    long long q = blockIdx.x;
    const float* maxima = partMax + q * splits;
    const float* sums = partSum + q * splits;
    float globalMax = -CUDART_INF_F;
    for (int s = 0; s < splits; s++) {
        globalMax = fmaxf(globalMax, maxima[s]);
    }
    float total = 0.0f;
    for (int s = 0; s < splits; s++) {
        if (maxima[s] != -CUDART_INF_F) {
            total += sums[s] * expf(maxima[s] - globalMax);
        }
    }
    for (int t = threadIdx.x; t < dim; t += blockDim.x) {
        float acc = 0.0f;
        for (int s = 0; s < splits; s++) {
            if (maxima[s] != -CUDART_INF_F) {
                acc = fmaf(partAcc[(q * splits + s) * dim + t], expf(maxima[s] - globalMax), acc);
            }
        }
        out[q * dim + t] = total > 0.0f ? acc / total : 0.0f;
    }
}
