// warp_emulation.h: enough of CUDA's execution model, on CPU threads, to run warp-level kernels in tests
// on a machine without a GPU. Each thread of a block is a std::thread; blocks run one after another;
// __shared__ arrays are function statics (one block at a time uses them); __syncthreads is a barrier of
// the block, and the warp collectives (shuffles, mma, ldmatrix) exchange values through a per-warp buffer
// between two barriers of the warp. mma.cuh includes this instead of its inline PTX when the compiler is
// not nvcc, so a kernel written against mma.cuh compiles unchanged for the GPU and for this emulation
// (its `#pragma unroll` lines need -Wno-unknown-pragmas from a host compiler).
// The emulated mma and ldmatrix follow the fragment layouts of the PTX ISA as mma.cuh states them: the
// emulation checks a kernel's use of the layouts, not the layouts themselves (only a GPU run does).
#pragma once
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#define __grid_constant__

struct uint4 {
    uint32_t x, y, z, w;
};
inline uint4 make_uint4(uint32_t x, uint32_t y, uint32_t z, uint32_t w) {
    return {x, y, z, w};
}
struct alignas(16) float4 {
    float x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) {
    return {x, y, z, w};
}

namespace aclip::cuda {

struct Index3 {
    unsigned x = 0, y = 0, z = 0;
};

namespace emulation {

struct Warp {
    explicit Warp() : barrier(32) {}
    std::barrier<> barrier;
    uint32_t words[32][6];  // what each lane posts for a collective
    const void* pointers[32];
};

struct Block {
    explicit Block(int threads) : barrier(threads), warps((threads + 31) / 32) {}
    std::barrier<> barrier;
    std::vector<Warp> warps;
};

inline thread_local Block* current_block = nullptr;

}  // namespace emulation

inline thread_local Index3 threadIdx, blockIdx, blockDim, gridDim;

// Runs body() as a kernel of grid (x, y) blocks of `threads` threads (a multiple of 32).
inline void emulate_launch(unsigned grid_x, unsigned grid_y, int threads, const std::function<void()>& body) {
    for (unsigned by = 0; by < grid_y; ++by)
        for (unsigned bx = 0; bx < grid_x; ++bx) {
            emulation::Block block(threads);
            std::vector<std::thread> pool;
            for (int t = 0; t < threads; ++t)
                pool.emplace_back([&, t] {
                    threadIdx = {static_cast<unsigned>(t), 0, 0};
                    blockIdx = {bx, by, 0};
                    blockDim = {static_cast<unsigned>(threads), 1, 1};
                    gridDim = {grid_x, grid_y, 1};
                    emulation::current_block = &block;
                    body();
                });
            for (std::thread& th : pool) th.join();
        }
}

inline void __syncthreads() {
    emulation::current_block->barrier.arrive_and_wait();
}

namespace emulation {

inline Warp& my_warp() {
    return current_block->warps[threadIdx.x / 32];
}

}  // namespace emulation

inline float __shfl_xor_sync(unsigned, float value, int lane_mask) {
    emulation::Warp& w = emulation::my_warp();
    const int lane = static_cast<int>(threadIdx.x % 32);
    std::memcpy(&w.words[lane][0], &value, sizeof value);
    w.barrier.arrive_and_wait();
    float other;
    std::memcpy(&other, &w.words[lane ^ lane_mask][0], sizeof other);
    w.barrier.arrive_and_wait();
    return other;
}

template <class T>
T min(T a, T b) {
    return b < a ? b : a;
}

inline float __fadd_rn(float a, float b) {  // the intrinsics that forbid contraction into a multiply-add
    return a + b;
}
inline float __fmul_rn(float a, float b) {
    return a * b;
}

inline float rsqrtf(float x) {  // CUDA's is approximate (2 ulp); tests compare with tolerances
    return 1.0f / std::sqrt(x);
}

}  // namespace aclip::cuda
