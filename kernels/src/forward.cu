// The prefill of a block of tokens through a Llama-family model, layer by layer, as io.csattention.model.Session
// runs it on the CPU: the projections and the feed-forward as float32 GEMMs (the weights dequantized once on upload),
// RMSNorm, RoPE on interleaved pairs, the SiLU gate, and exact causal attention of the block's queries over the keys
// of every earlier position and of the block itself (GQA: query head h reads KV head h / (heads / kvHeads)), tiled
// with an online softmax (the flash-attention form), never materializing the score matrix.

#include "common.cuh"
#include "gemm.cuh"

// Grid (ceil(rows / 64), ceil(tokens / 64)), 256 threads: out[t, r] = x[t, :] . w[r, :] + bias[r] + residual[t, r]
// (x [tokens, cols], w [rows, cols], out and residual [tokens, rows]; bias and residual may be null; residual may be
// out itself, each element being read and written by the one thread that owns it).
extern "C" __global__ void linear(const float* x, int tokens, int cols, const float* w, int rows, const float* bias,
                                  const float* residual, float* out) {
    float acc[4][4];
    int tokenTile = blockIdx.y * CSA_GEMM_TILE;
    int rowTile = blockIdx.x * CSA_GEMM_TILE;
    csa_gemm_tile(x, cols, tokens, w, cols, rows, true, 0, cols, tokenTile, rowTile, acc);
    int tx = threadIdx.x & 15;
    int ty = threadIdx.x >> 4;
    for (int i = 0; i < 4; i++) {
        int t = tokenTile + ty + 16 * i;
        for (int j = 0; j < 4; j++) {
            int r = rowTile + tx + 16 * j;
            if (t < tokens && r < rows) {
                long long at = (long long) t * rows + r;
                float value = acc[i][j];
                if (bias != nullptr) {
                    value += bias[r];
                }
                if (residual != nullptr) {
                    value = residual[at] + value;
                }
                out[at] = value;
            }
        }
    }
}

// One block per token (256 threads): out[t, :] = weight * (x[t, :] * 1 / sqrt(mean(x[t, :]^2) + eps)), in place when
// out is x (every read of the row happens before the barrier that precedes the writes).
extern "C" __global__ void rms_norm(const float* x, int n, const float* weight, float eps, float* out) {
    __shared__ float reduce[32];
    const float* row = x + (long long) blockIdx.x * n;
    float* target = out + (long long) blockIdx.x * n;
    int lane = threadIdx.x & 31;
    int warp = threadIdx.x >> 5;
    int warps = blockDim.x >> 5;
    float sum = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        sum = fmaf(row[i], row[i], sum);
    }
    for (int o = 16; o > 0; o >>= 1) {
        sum += __shfl_down_sync(CSA_FULL_MASK, sum, o);
    }
    if (lane == 0) {
        reduce[warp] = sum;
    }
    __syncthreads();
    float total = 0.0f;
    for (int w = 0; w < warps; w++) {
        total += reduce[w];
    }
    float scale = 1.0f / sqrtf(total / n + eps);
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        target[i] = weight[i] * (scale * row[i]);
    }
}

// One block per token: rotates dimensions (2i, 2i + 1), i < pairs, of every head of x[t, :] (width = heads *
// headSize) by the angle positions[t] * frequencies[i] (rounded to float, as LlamaModel.rope computes it).
extern "C" __global__ void rope_rows(float* x, int width, int headSize, int pairs, const float* frequencies,
                                     const int* positions) {
    int heads = width / headSize;
    float position = (float) positions[blockIdx.x];
    float* row = x + (long long) blockIdx.x * width;
    for (int e = threadIdx.x; e < heads * pairs; e += blockDim.x) {
        int head = e / pairs;
        int pair = e % pairs;
        float angle = position * frequencies[pair];
        float c = cosf(angle);
        float s = sinf(angle);
        float* p = row + head * headSize + 2 * pair;
        float v0 = p[0];
        float v1 = p[1];
        p[0] = v0 * c - v1 * s;
        p[1] = v0 * s + v1 * c;
    }
}

// Grid ceil(n / 256), 256 threads: gate[i] = silu(gate[i]) * up[i] = gate / (1 + exp(-gate)) * up.
extern "C" __global__ void silu_gate(float* gate, const float* up, long long n) {
    long long i = (long long) blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

#define FLASH_QUERIES 16
#define FLASH_KEYS 32
#define FLASH_MAX_HEAD 128

// Causal attention of `count` new tokens at positions start .. start + count - 1. queries [count, heads * headSize];
// keys and values [start + count, kvHeads * headSize] by position (the block's own rows already written); out
// [count, heads * headSize]. Grid (ceil(count / 16), heads), 128 threads, dynamic shared memory (16 * headSize +
// 32 * (headSize + 1) + 16 * 32) floats; headSize <= 128. Each block holds 16 queries of one head; thread (row =
// thread / 8, sub = thread % 8) owns query row `row`, the tile's keys sub + 8 i and the output dimensions sub + 8 i.
// Per tile of 32 keys: scores, the running maximum and sum updated (online softmax), the accumulator rescaled and the
// tile's values added. Key 0 is in every query's range, so after the first tile every running maximum is finite.
extern "C" __global__ void attend_causal(const float* queries, int count, int start, const float* keys,
                                         const float* values, int heads, int kvHeads, int headSize, float scale,
                                         float* out) {
    CSA_DYNAMIC_SHARED(float, shared);
    int kvPitch = headSize + 1;                       // padded: the 8 threads of a row read 8 different key rows
    float* tileQueries = shared;                      // [FLASH_QUERIES, headSize]
    float* tileRows = shared + FLASH_QUERIES * headSize;  // [FLASH_KEYS, kvPitch]: keys, then values
    float* tileWeights = tileRows + FLASH_KEYS * kvPitch;  // [FLASH_QUERIES, FLASH_KEYS]
    int queryStride = heads * headSize;
    int kvStride = kvHeads * headSize;
    int head = blockIdx.y;
    int kvOffset = (head / (heads / kvHeads)) * headSize;
    int first = blockIdx.x * FLASH_QUERIES;
    int row = threadIdx.x >> 3;
    int sub = threadIdx.x & 7;
    int query = first + row;
    int position = start + min(query, count - 1);    // rows past the block compute on zeros and write nothing
    for (int x = threadIdx.x; x < FLASH_QUERIES * headSize; x += blockDim.x) {
        int r = first + x / headSize;
        tileQueries[x] = r < count ? queries[(long long) r * queryStride + head * headSize + x % headSize] : 0.0f;
    }
    float acc[FLASH_MAX_HEAD / 8];
    for (int i = 0; i < FLASH_MAX_HEAD / 8; i++) {
        acc[i] = 0.0f;
    }
    float runningMax = -CUDART_INF_F;
    float runningSum = 0.0f;
    int lastKey = start + min(first + FLASH_QUERIES, count) - 1;
    const float* q = tileQueries + row * headSize;
    for (int k0 = 0; k0 <= lastKey; k0 += FLASH_KEYS) {
        int size = min(FLASH_KEYS, lastKey + 1 - k0);
        __syncthreads();
        for (int x = threadIdx.x; x < FLASH_KEYS * headSize; x += blockDim.x) {
            int j = x / headSize;
            int t = x % headSize;
            tileRows[j * kvPitch + t] = j < size ? keys[(long long) (k0 + j) * kvStride + kvOffset + t] : 0.0f;
        }
        __syncthreads();
        float scores[FLASH_KEYS / 8];
        float tileMax = -CUDART_INF_F;
        for (int i = 0; i < FLASH_KEYS / 8; i++) {
            int j = sub + 8 * i;
            scores[i] = -CUDART_INF_F;
            if (j < size && k0 + j <= position) {
                const float* key = tileRows + j * kvPitch;
                float dot = 0.0f;
                for (int t = 0; t < headSize; t++) {
                    dot = fmaf(q[t], key[t], dot);
                }
                scores[i] = dot * scale;
            }
            tileMax = fmaxf(tileMax, scores[i]);
        }
        for (int o = 4; o > 0; o >>= 1) {
            tileMax = fmaxf(tileMax, __shfl_xor_sync(CSA_FULL_MASK, tileMax, o));
        }
        float newMax = fmaxf(runningMax, tileMax);
        float rescale = expf(runningMax - newMax);
        float tileSum = 0.0f;
        for (int i = 0; i < FLASH_KEYS / 8; i++) {
            float p = scores[i] == -CUDART_INF_F ? 0.0f : expf(scores[i] - newMax);
            tileWeights[row * FLASH_KEYS + sub + 8 * i] = p;
            tileSum += p;
        }
        for (int o = 4; o > 0; o >>= 1) {
            tileSum += __shfl_xor_sync(CSA_FULL_MASK, tileSum, o);
        }
        runningSum = runningSum * rescale + tileSum;
        runningMax = newMax;
        __syncthreads();
        for (int x = threadIdx.x; x < FLASH_KEYS * headSize; x += blockDim.x) {
            int j = x / headSize;
            int t = x % headSize;
            tileRows[j * kvPitch + t] = j < size ? values[(long long) (k0 + j) * kvStride + kvOffset + t] : 0.0f;
        }
        __syncthreads();
        const float* weights = tileWeights + row * FLASH_KEYS;
        for (int i = 0; i < FLASH_MAX_HEAD / 8; i++) {
            int t = sub + 8 * i;
            if (t < headSize) {
                float a = acc[i] * rescale;
                for (int j = 0; j < size; j++) {
                    a = fmaf(weights[j], tileRows[j * kvPitch + t], a);
                }
                acc[i] = a;
            }
        }
    }
    if (query < count) {
        float* target = out + (long long) query * queryStride + head * headSize;
        for (int i = 0; i < FLASH_MAX_HEAD / 8; i++) {
            int t = sub + 8 * i;
            if (t < headSize) {
                target[t] = acc[i] / runningSum;
            }
        }
    }
}
