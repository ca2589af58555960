// Exact softmax attention (scale 1/sqrt(d)) for a block of queries over selected keys (the sparse decode) or over
// every key (the full-attention baseline), split over the keys like flash-decoding: each block reduces a chunk of keys
// to (max, sum of exp, exp-weighted value sum), and a second kernel combines the chunks. Semantics follow
// io.csattention.core.Attention: entries of the selection below zero are padding and are skipped.

#include "common.cuh"
#include "gemm.cuh"

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

// Full attention of a block of queries that share one context as two matrix products with a softmax between, the form
// of shared-prefix serving: scores = scale * Q K^T [queries, n], the rows exponentiated in place, outputs = P V over
// splits of the keys, summed and divided by the row sums. Each key and value row is read once per tile of
// CSA_GEMM_TILE queries, against once per ATTEND_QUERY_TILE queries in attend_all_tiled and once per query in
// attend_partial; the price is the score rows, written and read back. CUDA-core float32 register tiles (64 x 64 per
// block, 4 x 4 per thread, gemm.cuh), not tensor cores: no cuBLAS (kernels/README.md says why).

// Grid (ceil(n / 64), ceil(queryCount / 64)), 256 threads: scores[q * n + key] = scale * (query q . key).
extern "C" __global__ void gemm_scores(const float* queries, int queryCount, const float* keys, int n, int dim,
                                       float scale, float* scores) {
    float acc[4][4];
    int rowTile = blockIdx.y * CSA_GEMM_TILE;
    int colTile = blockIdx.x * CSA_GEMM_TILE;
    csa_gemm_tile(queries, dim, queryCount, keys, dim, n, true, 0, dim, rowTile, colTile, acc);
    int tx = threadIdx.x & 15;
    int ty = threadIdx.x >> 4;
    for (int i = 0; i < 4; i++) {
        int q = rowTile + ty + 16 * i;
        for (int j = 0; j < 4; j++) {
            int key = colTile + tx + 16 * j;
            if (q < queryCount && key < n) {
                scores[(long long) q * n + key] = acc[i][j] * scale;
            }
        }
    }
}

// One block per row (up to 1024 threads): scores[q, :] = exp(scores[q, :] - max), rowSums[q] = their sum (the division
// waits for gemm_sum_splits, so the weights are written once).
extern "C" __global__ void softmax_rows(float* scores, int n, float* rowSums) {
    __shared__ float reduce[32];
    float* row = scores + (long long) blockIdx.x * n;
    int lane = threadIdx.x & 31;
    int warp = threadIdx.x >> 5;
    int warps = blockDim.x >> 5;
    float localMax = -CUDART_INF_F;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        localMax = fmaxf(localMax, row[i]);
    }
    for (int o = 16; o > 0; o >>= 1) {
        localMax = fmaxf(localMax, __shfl_down_sync(CSA_FULL_MASK, localMax, o));
    }
    if (lane == 0) {
        reduce[warp] = localMax;
    }
    __syncthreads();
    float rowMax = -CUDART_INF_F;
    for (int w = 0; w < warps; w++) {
        rowMax = fmaxf(rowMax, reduce[w]);
    }
    __syncthreads();
    float localSum = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float w = expf(row[i] - rowMax);
        row[i] = w;
        localSum += w;
    }
    for (int o = 16; o > 0; o >>= 1) {
        localSum += __shfl_down_sync(CSA_FULL_MASK, localSum, o);
    }
    if (lane == 0) {
        reduce[warp] = localSum;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        float total = 0.0f;
        for (int w = 0; w < warps; w++) {
            total += reduce[w];
        }
        rowSums[blockIdx.x] = total;
    }
}

// Grid (ceil(dim / 64) * splits, ceil(queryCount / 64)), 256 threads; split s covers keys [s * splitKeys,
// min(n, (s + 1) * splitKeys)): partial[(s * queryCount + q) * dim + t] = sum over those keys of weights[q, key] *
// values[key, t].
extern "C" __global__ void gemm_values(const float* weights, int queryCount, const float* values, int n, int dim,
                                       int splitKeys, float* partial) {
    float acc[4][4];
    int colTiles = (dim + CSA_GEMM_TILE - 1) / CSA_GEMM_TILE;
    int split = blockIdx.x / colTiles;
    int colTile = (blockIdx.x % colTiles) * CSA_GEMM_TILE;
    int rowTile = blockIdx.y * CSA_GEMM_TILE;
    int k0 = split * splitKeys;
    int k1 = min(n, k0 + splitKeys);
    csa_gemm_tile(weights + k0, n, queryCount, values + (long long) k0 * dim, dim, dim, false, 0, k1 - k0, rowTile,
                  colTile, acc);
    int tx = threadIdx.x & 15;
    int ty = threadIdx.x >> 4;
    for (int i = 0; i < 4; i++) {
        int q = rowTile + ty + 16 * i;
        for (int j = 0; j < 4; j++) {
            int t = colTile + tx + 16 * j;
            if (q < queryCount && t < dim) {
                partial[((long long) split * queryCount + q) * dim + t] = acc[i][j];
            }
        }
    }
}

// Grid ceil(queryCount * dim / 256), 256 threads: out[q, t] = sum_s partial[s, q, t] / rowSums[q].
extern "C" __global__ void gemm_sum_splits(const float* partial, int splits, int queryCount, int dim,
                                           const float* rowSums, float* out) {
    long long x = (long long) blockIdx.x * blockDim.x + threadIdx.x;
    long long size = (long long) queryCount * dim;
    if (x >= size) {
        return;
    }
    float sum = 0.0f;
    for (int s = 0; s < splits; s++) {
        sum += partial[s * size + x];
    }
    out[x] = sum / rowSums[x / dim];
}
