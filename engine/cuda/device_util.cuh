// device_util.cuh: what every CUDA kernel file shares: loading and storing each dtype in its compute
// type, strided offsets from a linear index, warp and block reductions, and dtype dispatch on the host.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <initializer_list>

#include "engine/core/tensor.h"
#include "engine/cpu/strided_loop.h"  // broadcast_strides
#include "engine/cuda/cuda_check.cuh"
#include "engine/cuda/launch.h"

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

// Offset of element `linear` (row-major over dims.shape) in operand k.
template <int K>
__device__ __forceinline__ int64_t offset_of(const CollapsedDims& dims, int64_t linear) {
    int64_t off = 0;
    for (int d = dims.ndim - 1; d >= 0; --d) {
        int64_t idx = linear % dims.shape[d];
        linear /= dims.shape[d];
        off += idx * dims.strides[K][d];
    }
    return off;
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
// Whether every given pointer (null ones pass) is aligned to `bytes`.
inline bool all_aligned(std::initializer_list<const void*> pointers, size_t bytes) {
    for (const void* p : pointers)
        if (reinterpret_cast<uintptr_t>(p) % bytes != 0) return false;
    return true;
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
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

// Calls fn(TypeTag<T>{}) for the dtypes CUDA kernels compute on: f32 and bf16 (f64 is CPU-only, for
// gradient checks).
template <class F>
void dispatch_gpu_float(DType t, const char* op, F&& fn) {
    switch (t) {
        case DType::F32:
            fn(TypeTag<float>{});
            return;
        case DType::BF16:
            fn(TypeTag<bf16>{});
            return;
        default:
            AC_FAIL_HINT("keep f64 tensors on the CPU (f64 exists for gradient checks)", op, ": dtype ",
                         dtype_name(t), " has no CUDA kernel; expected f32 or bf16");
    }
}

}  // namespace aclip::cuda
