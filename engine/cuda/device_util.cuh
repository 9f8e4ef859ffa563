// device_util.cuh: what every CUDA kernel file shares: the device helpers of device_math.cuh (loading and
// storing each dtype in its compute type, 16-byte packs, strided offsets, warp and block reductions),
// pointer alignment and dtype dispatch on the host.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <initializer_list>

#include "engine/core/tensor.h"
#include "engine/cpu/strided_loop.h"  // broadcast_strides
#include "engine/cuda/cuda_check.cuh"
#include "engine/cuda/device_math.cuh"
#include "engine/cuda/launch.h"

namespace aclip::cuda {

// Whether every given pointer (null ones pass) is aligned to `bytes`.
inline bool all_aligned(std::initializer_list<const void*> pointers, size_t bytes) {
    for (const void* p : pointers)
        if (reinterpret_cast<uintptr_t>(p) % bytes != 0) return false;
    return true;
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
