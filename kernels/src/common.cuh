// Device helpers shared by the csattention kernels: ordered float keys, block scans and the block-level top-k
// (radix select) that list building and decode both use. Ties are broken by the lowest position, which callers keep
// equal to the lowest key id (positions are always in ascending id order), matching io.csattention.core.TopK.
#pragma once

#include <cfloat>
#include <climits>
#include <math_constants.h>

#define CSA_FULL_MASK 0xffffffffu

// Dynamic shared memory of a kernel (kernels/emulator redefines it to run the kernels on CPU threads).
#ifndef CSA_DYNAMIC_SHARED
#define CSA_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif

// Maps a float to an unsigned key with the same order (larger float -> larger key). -0 and +0 map to the same key,
// as Java's primitive comparison treats them as equal.
__device__ __forceinline__ unsigned csa_ordered_key(float value) {
    unsigned bits = __float_as_uint(value + 0.0f);
    return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

// "a is better than b": larger score, then lower id.
__device__ __forceinline__ bool csa_better(float sa, int ia, float sb, int ib) {
    return sa > sb || (sa == sb && ia < ib);
}

// Exclusive prefix sum over the block (blockDim.x a multiple of 32, at most 1024). Every thread of the block must
// call it. warpTotals: shared [33] (per-warp prefixes, then the block total). Returns the exclusive prefix and stores
// the block total in *total.
__device__ int csa_block_exclusive_scan(int value, int* warpTotals, int* total) {
    int lane = threadIdx.x & 31;
    int warp = threadIdx.x >> 5;
    int warps = blockDim.x >> 5;
    int inclusive = value;
    for (int offset = 1; offset < 32; offset <<= 1) {
        int other = __shfl_up_sync(CSA_FULL_MASK, inclusive, offset);
        if (lane >= offset) {
            inclusive += other;
        }
    }
    if (lane == 31) {
        warpTotals[warp] = inclusive;
    }
    __syncthreads();
    if (warp == 0) {
        int own = lane < warps ? warpTotals[lane] : 0;
        int running = own;
        for (int offset = 1; offset < 32; offset <<= 1) {
            int other = __shfl_up_sync(CSA_FULL_MASK, running, offset);
            if (lane >= offset) {
                running += other;
            }
        }
        if (lane < warps) {
            warpTotals[lane] = running - own;
        }
        if (lane == warps - 1) {
            warpTotals[32] = running;
        }
    }
    __syncthreads();
    int result = warpTotals[warp] + inclusive - value;
    int blockTotal = warpTotals[32];
    __syncthreads();
    *total = blockTotal;
    return result;
}

// Sum of a double over the block; every thread gets the result. scratch: shared [32].
__device__ double csa_block_sum(double value, double* scratch) {
    int lane = threadIdx.x & 31;
    int warp = threadIdx.x >> 5;
    for (int offset = 16; offset > 0; offset >>= 1) {
        value += __shfl_down_sync(CSA_FULL_MASK, value, offset);
    }
    if (lane == 0) {
        scratch[warp] = value;
    }
    __syncthreads();
    if (warp == 0) {
        double v = lane < (int) (blockDim.x >> 5) ? scratch[lane] : 0.0;
        for (int offset = 16; offset > 0; offset >>= 1) {
            v += __shfl_down_sync(CSA_FULL_MASK, v, offset);
        }
        if (lane == 0) {
            scratch[0] = v;
        }
    }
    __syncthreads();
    double result = scratch[0];
    __syncthreads();
    return result;
}

// Order-preserving unsigned keys of a row, read by the block top-k: CsaFloatKeys for float scores (csa_ordered_key),
// CsaSumKeys for decode's integer list sums, which stay within +-(127 * 255) (8-bit units, fewer than 256 subspaces,
// checked on the host), so sum + 32768 orders them in 16 bits and the radix select needs two passes, not four.
struct CsaFloatKeys {
    const float* scores;
    static constexpr int TOP_SHIFT = 24;
    __device__ __forceinline__ unsigned operator()(int i) const { return csa_ordered_key(scores[i]); }
};

struct CsaSumKeys {
    const int* sums;
    static constexpr int TOP_SHIFT = 8;
    __device__ __forceinline__ unsigned operator()(int i) const { return (unsigned) (sums[i] + 32768); }
};

// The k-th largest key of keys(0 .. count) (1 <= k <= count) by 8-bit radix select from bit Keys::TOP_SHIFT down,
// and how many entries equal to it belong to the top k (the ones at the lowest positions). Every thread of the block
// must call it.
template <class Keys>
__device__ void csa_radix_select(Keys keys, int count, int k, unsigned* threshold, int* takeEqual) {
    __shared__ unsigned histogram[256];
    __shared__ unsigned chosenDigit;
    __shared__ int chosenRemaining;
    unsigned prefix = 0;
    unsigned mask = 0;
    int remaining = k;
    for (int shift = Keys::TOP_SHIFT; shift >= 0; shift -= 8) {
        for (int b = threadIdx.x; b < 256; b += blockDim.x) {
            histogram[b] = 0;
        }
        __syncthreads();
        // Scores bunch into a few bins (most keys of a decode row meet no chosen list and sum to 0), so lanes of a
        // warp that hit the same bin add their count once (warp-aggregated atomics) instead of queueing on one
        // shared-memory address.
        int lane = threadIdx.x & 31;
        for (int base = 0; base < count; base += blockDim.x) {
            int i = base + threadIdx.x;
            unsigned key = i < count ? keys(i) : 0u;
            bool active = i < count && (key & mask) == prefix;
            unsigned bin = active ? (key >> shift) & 255u : 0xffffffffu;
            unsigned peers = __match_any_sync(CSA_FULL_MASK, bin);
            if (active && lane == __ffs(peers) - 1) {
                atomicAdd(&histogram[bin], (unsigned) __popc(peers));
            }
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            int above = 0;
            unsigned digit = 0;
            for (int b = 255; b >= 0; b--) {
                int here = (int) histogram[b];
                if (above + here >= remaining) {
                    digit = (unsigned) b;
                    break;
                }
                above += here;
            }
            chosenDigit = digit;
            chosenRemaining = remaining - above;
        }
        __syncthreads();
        prefix |= chosenDigit << shift;
        mask |= 255u << shift;
        remaining = chosenRemaining;
        __syncthreads();
    }
    *threshold = prefix;
    *takeEqual = remaining;
}

// Writes the ids of the best k of keys(0 .. count) (larger key, then lower position) in ascending position order
// to out[0 .. k); the id of position i is ids[i], or idBase + i when ids is null. When k >= count every entry is
// written and out[count .. k) gets -1. If outScores is not null, scores[i] is written alongside. Returns the number
// written (min(k, count)). Every thread of the block must call it.
template <class Keys>
__device__ int csa_block_top_k_keys(Keys keys, const int* ids, int idBase, int count, int k, int* out,
                                    const float* scores, float* outScores) {
    __shared__ int warpTotals[33];
    unsigned threshold = 0;
    int takeEqual = count;
    bool takeAll = k >= count;
    if (!takeAll) {
        csa_radix_select(keys, count, k, &threshold, &takeEqual);
    }
    int written = 0;
    int equalSeen = 0;
    for (int base = 0; base < count; base += blockDim.x) {
        int i = base + threadIdx.x;
        bool inRange = i < count;
        unsigned key = inRange ? keys(i) : 0u;
        bool greater = inRange && (takeAll || key > threshold);
        bool equal = inRange && !takeAll && key == threshold;
        int equalTotal;
        int equalRank = csa_block_exclusive_scan(equal ? 1 : 0, warpTotals, &equalTotal);
        bool take = greater || (equal && equalSeen + equalRank < takeEqual);
        int takenTotal;
        int slot = csa_block_exclusive_scan(take ? 1 : 0, warpTotals, &takenTotal);
        if (take) {
            out[written + slot] = ids != nullptr ? ids[i] : idBase + i;
            if (outScores != nullptr) {
                outScores[written + slot] = scores[i];
            }
        }
        written += takenTotal;
        equalSeen += equalTotal;
    }
    for (int i = written + threadIdx.x; i < k; i += blockDim.x) {
        out[i] = -1;
    }
    __syncthreads();
    return written;
}

// csa_block_top_k_keys over float scores (larger score, then lower position).
__device__ int csa_block_top_k(const float* scores, const int* ids, int idBase, int count, int k, int* out,
                               float* outScores) {
    return csa_block_top_k_keys(CsaFloatKeys{scores}, ids, idBase, count, k, out, scores, outScores);
}
