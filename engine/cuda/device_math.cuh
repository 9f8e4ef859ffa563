// device_math.cuh: the device helpers kernels are written with: loading and storing each dtype in its
// compute type, offsets of strided operands, V elements moved as one 16-byte access (Pack), a warp's row
// held in registers (RowSlice), and warp, lane-group and block reductions. Nothing here needs the CUDA
// runtime, so a kernel written with these compiles for the GPU and, through warp_emulation.h, for the CPU
// tests that run it on emulated threads (tests/cuda/*_emulated.cpp).
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "engine/core/dtype.h"
#include "engine/cuda/launch.h"  // CollapsedDims

#if !defined(__CUDACC__)
#include <atomic>

#include "engine/cuda/warp_emulation.h"
#endif

namespace aclip::cuda {

template <class T>
__device__ __forceinline__ compute_t<T> ld(T v) {
    return v;
}
__device__ __forceinline__ float ld(bf16 v) {
    return bf16_to_f32(v);
}
template <class T, class C>
__device__ __forceinline__ T st(C v) {
    if constexpr (std::is_same_v<T, bf16>)
        return bf16_from_f32(static_cast<float>(v));
    else
        return static_cast<T>(v);
}

// Offsets of element `linear` (row-major over dims.shape) in operands 0 .. N - 1: the index is taken apart
// once for all of them (one division a dim, the costly part of a strided kernel): in 32 bits by
// multiplies when the tensor has fewer than 2^31 elements, else by 64-bit divisions.
template <int N>
struct Offsets {
    int64_t at[N];
};
template <int N>
__device__ __forceinline__ Offsets<N> offsets_of(const CollapsedDims& dims, int64_t linear) {
    Offsets<N> o{};
    if (dims.index32) {
        uint32_t rest = static_cast<uint32_t>(linear);
        for (int d = dims.ndim - 1; d >= 0; --d) {
            const uint32_t quotient = divide(rest, dims.divider[d]),
                           idx = rest - quotient * static_cast<uint32_t>(dims.shape[d]);
            rest = quotient;
#pragma unroll
            for (int k = 0; k < N; ++k) o.at[k] += static_cast<int64_t>(idx) * dims.strides[k][d];
        }
        return o;
    }
    for (int d = dims.ndim - 1; d >= 0; --d) {
        const int64_t quotient = linear / dims.shape[d], idx = linear - quotient * dims.shape[d];
        linear = quotient;
#pragma unroll
        for (int k = 0; k < N; ++k) o.at[k] += idx * dims.strides[k][d];
    }
    return o;
}

// V consecutive elements moved as one access of V * sizeof(T) bytes (16 at most), the unit of vectorised
// loops (pointwise, LayerNorm); the address must be aligned to that size. vector_width<T>() is V for
// 16-byte accesses.
template <class T, int V>
struct alignas(sizeof(T) * V) Pack {
    T v[V];
};
template <class T, int V>
__device__ __forceinline__ Pack<T, V> load_pack(const T* p) {
    return *reinterpret_cast<const Pack<T, V>*>(p);
}
template <class T, int V>
__device__ __forceinline__ void store_pack(T* p, const Pack<T, V>& x) {
    *reinterpret_cast<Pack<T, V>*>(p) = x;
}
template <class T>
constexpr int vector_width() {
    return 16 / static_cast<int>(sizeof(T));
}

// A warp's share of a row of f32 or bf16: from element c, lane l holds P packs of V elements, pack p at
// c + (32 p + l) V, so a warp's p-th loads read 32 V consecutive elements (512 bytes with 16-byte packs).
// load() issues all P loads before any is used: a warp has a whole slice in flight at once. (A loop of one
// pack an iteration, whose trip count a kernel knows only at run time, waits a memory round trip a pack:
// nvcc unrolls it by 4 after a remainder loop of single iterations, so a 768-wide row, 3 or 6 packs a
// lane, took 3 round trips.) Values stay packed as loaded, two bf16 a register (a bf16 held alone takes
// a whole register), and value() unpacks one. Packs past the row's end, `D` elements, hold zeros.
template <class T, int V, int P>
struct RowSlice {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, bf16>, "a RowSlice holds f32 or bf16");
    static constexpr int kElements = 32 * V * P;  // elements a warp holds
    static constexpr int kWords =
        static_cast<int>(sizeof(T)) * V / 4;  // registers a pack takes (0: a lone bf16)
    uint32_t words[P][kWords > 0 ? kWords : 1] = {};

    __device__ __forceinline__ static int64_t first(int64_t c, int p) {
        return c + (32 * p + static_cast<int>(threadIdx.x % 32)) * V;
    }
    __device__ __forceinline__ void load(const T* row, int64_t c, int64_t D) {
#pragma unroll
        for (int p = 0; p < P; ++p) {
            const int64_t i = first(c, p);
            if constexpr (kWords == 0) {
                words[p][0] = i < D ? row[i].bits : 0u;
            } else {
                Pack<uint32_t, kWords> w{};
                if (i < D) w = load_pack<uint32_t, kWords>(reinterpret_cast<const uint32_t*>(row + i));
#pragma unroll
                for (int k = 0; k < kWords; ++k) words[p][k] = w.v[k];
            }
        }
    }
    // Element k of pack p.
    __device__ __forceinline__ float value(int p, int k) const {
        if constexpr (std::is_same_v<T, float>) return f32_from_bits(words[p][k]);
        const uint32_t w = words[p][k / 2];
        return f32_from_bits(k % 2 ? w & 0xffff0000u : w << 16);
    }
};

// A grid-stride loop over [0, n): for (int64_t p = first_thread(); p < n; p += thread_count()).
__device__ __forceinline__ int64_t first_thread() {
    return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t thread_count() {
    return static_cast<int64_t>(gridDim.x) * blockDim.x;
}

// *p += v for threads that may meet at p; returns the old value.
__device__ __forceinline__ int atomic_add_int(int* p, int v) {
#if defined(__CUDACC__)
    return atomicAdd(p, v);
#else  // emulated threads
    return std::atomic_ref<int>(*p).fetch_add(v);
#endif
}

// The row of this thread's warp in kernels where each warp of a block takes one row.
__device__ __forceinline__ int64_t warp_row() {
    return static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
}

// Sums and maxima over a warp, or over each aligned group of L lanes of it (every lane must call).
template <int L = 32>
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = L / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
template <int L = 32>
__device__ __forceinline__ float warp_max(float v) {
    for (int o = L / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over a block of up to 1024 threads; every thread gets the result. `shared` holds 32 floats.
__device__ __forceinline__ float block_sum(float v, float* shared) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = (blockDim.x + 31) / 32;
    v = warp_sum(v);
    __syncthreads();  // shared may still be read by a previous call
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    v = lane < warps ? shared[lane] : 0.0f;
    return warp_sum(v);
}

__device__ __forceinline__ float block_max(float v, float* shared) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = (blockDim.x + 31) / 32;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    v = lane < warps ? shared[lane] : -INFINITY;
    return warp_max(v);
}

}  // namespace aclip::cuda
