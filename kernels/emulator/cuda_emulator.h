// Runs the CUDA C kernels of kernels/src on CPU threads, one std::thread per CUDA thread and one block at a time, so
// that their logic (scans, radix select, bitonic sort, reductions, the decode pipeline) can be checked on machines
// without a GPU. Not a performance model. __syncthreads is a std::barrier over the block's threads (threads that
// return early drop out, as on a GPU), warp shuffles exchange through a per-warp buffer behind a per-warp barrier,
// __shared__ variables are statics (shared by the one block that runs), dynamic shared memory is one static arena.
#pragma once

#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

struct csa_emu_dim {
    unsigned x = 0, y = 0, z = 0;
};

inline thread_local csa_emu_dim threadIdx;
inline thread_local csa_emu_dim blockIdx;
inline csa_emu_dim blockDim;
inline csa_emu_dim gridDim;
inline thread_local std::barrier<>* csa_emu_block_barrier = nullptr;
inline thread_local std::barrier<>* csa_emu_warp_barrier = nullptr;
inline thread_local uint64_t* csa_emu_warp_slots = nullptr;
alignas(16) inline unsigned char csa_emu_dynamic_shared[1 << 20];

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define CSA_DYNAMIC_SHARED(type, name) type* name = reinterpret_cast<type*>(csa_emu_dynamic_shared)

inline void __syncthreads() {
    csa_emu_block_barrier->arrive_and_wait();
}

inline float __int_as_float(int v) {
    float f;
    std::memcpy(&f, &v, 4);
    return f;
}

inline unsigned __float_as_uint(float f) {
    unsigned v;
    std::memcpy(&v, &f, 4);
    return v;
}

template <class T>
inline T __ldg(const T* p) {
    return *p;
}

template <class T>
inline T csa_emu_exchange(T value, int sourceLane, bool valid) {
    static_assert(sizeof(T) <= 8, "shuffle of at most 8 bytes");
    int lane = threadIdx.x & 31;
    std::memcpy(&csa_emu_warp_slots[lane], &value, sizeof(T));
    csa_emu_warp_barrier->arrive_and_wait();
    T result = value;
    if (valid) {
        std::memcpy(&result, &csa_emu_warp_slots[sourceLane], sizeof(T));
    }
    csa_emu_warp_barrier->arrive_and_wait();
    return result;
}

template <class T>
inline T __shfl_sync(unsigned, T value, int sourceLane) {
    return csa_emu_exchange(value, sourceLane, true);
}

template <class T>
inline T __shfl_up_sync(unsigned, T value, int offset) {
    int lane = threadIdx.x & 31;
    return csa_emu_exchange(value, lane - offset, lane >= offset);
}

template <class T>
inline T __shfl_down_sync(unsigned, T value, int offset) {
    int lane = threadIdx.x & 31;
    int warpSize = (int) std::min(32u, blockDim.x - (threadIdx.x & ~31u));
    return csa_emu_exchange(value, lane + offset, lane + offset < warpSize);
}

template <class T>
inline T __shfl_xor_sync(unsigned, T value, int laneMask) {
    int lane = threadIdx.x & 31;
    int warpSize = (int) std::min(32u, blockDim.x - (threadIdx.x & ~31u));
    return csa_emu_exchange(value, lane ^ laneMask, (lane ^ laneMask) < warpSize);
}

inline unsigned __match_any_sync(unsigned, unsigned value) {
    int lane = threadIdx.x & 31;
    int warpSize = (int) std::min(32u, blockDim.x - (threadIdx.x & ~31u));
    csa_emu_warp_slots[lane] = value;
    csa_emu_warp_barrier->arrive_and_wait();
    unsigned peers = 0;
    for (int other = 0; other < warpSize; other++) {
        if ((unsigned) csa_emu_warp_slots[other] == value) {
            peers |= 1u << other;
        }
    }
    csa_emu_warp_barrier->arrive_and_wait();
    return peers;
}

inline int __ffs(unsigned value) {
    return __builtin_ffs((int) value);
}

inline int __popc(unsigned value) {
    return __builtin_popcount(value);
}

inline unsigned atomicAdd(unsigned* address, unsigned value) {
    return __atomic_fetch_add(address, value, __ATOMIC_SEQ_CST);
}

inline int atomicAdd(int* address, int value) {
    return __atomic_fetch_add(address, value, __ATOMIC_SEQ_CST);
}

/** Runs kernel() on a gridX x gridY grid of 1-D blocks of `block` threads, one block after the other. */
template <class Kernel>
void csa_emu_launch(unsigned gridX, unsigned gridY, unsigned block, Kernel kernel) {
    gridDim = {gridX, gridY, 1};
    blockDim = {block, 1, 1};
    for (unsigned by = 0; by < gridY; by++) {
        for (unsigned bx = 0; bx < gridX; bx++) {
            std::barrier<> blockBarrier((std::ptrdiff_t) block);
            unsigned warps = (block + 31) / 32;
            std::vector<std::unique_ptr<std::barrier<>>> warpBarriers;
            std::vector<uint64_t> slots(warps * 32);
            for (unsigned w = 0; w < warps; w++) {
                warpBarriers.push_back(std::make_unique<std::barrier<>>((std::ptrdiff_t) std::min(32u, block - w * 32)));
            }
            std::vector<std::thread> threads;
            threads.reserve(block);
            for (unsigned t = 0; t < block; t++) {
                threads.emplace_back([&, t] {
                    threadIdx = {t, 0, 0};
                    blockIdx = {bx, by, 0};
                    csa_emu_block_barrier = &blockBarrier;
                    csa_emu_warp_barrier = warpBarriers[t / 32].get();
                    csa_emu_warp_slots = &slots[(t / 32) * 32];
                    kernel();
                    csa_emu_warp_barrier->arrive_and_drop();
                    csa_emu_block_barrier->arrive_and_drop();
                });
            }
            for (auto& thread : threads) {
                thread.join();
            }
        }
    }
}
