// device_util.cuh: what every CUDA kernel file shares: the device helpers of device_math.cuh (loading and
// storing each dtype in its compute type, 16-byte packs, strided offsets, warp and block reductions),
// running a column sum, and dtype dispatch on the host (pointer alignment is launch.h's).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "engine/core/tensor.h"
#include "engine/cpu/strided_loop.h"  // broadcast_strides
#include "engine/cuda/column_sums.cuh"
#include "engine/cuda/cuda_check.cuh"
#include "engine/cuda/device_math.cuh"
#include "engine/cuda/launch.h"

namespace aclip::cuda {

// The second pass of sums left in partial (K, chunks, n): add_chunks adds sum k's chunks into out[k], a null
// output skipped.
template <class T, int K>
void add_all_chunks(const float* partial, T* const (&out)[K], int64_t n, int64_t chunks, const char* name) {
    for (int k = 0; k < K; ++k) {
        if (!out[k]) continue;
        columns::add_chunks<T><<<columns::add_chunks_blocks(n), columns::kThreads>>>(partial + k * chunks * n,
                                                                                     out[k], n, chunks);
        AC_CUDA_LAUNCH_CHECK(name);
    }
}

// Runs a column-sum kernel (column_sums.cuh) of K sums a column over n columns and R rows, V columns a lane:
// kernel(grid, partial, chunks) queues it with `columns::kThreads` threads a block. With several row
// chunks it leaves partial (K, chunks, n), whose chunks add_chunks then adds into out[k] (a null output is
// skipped); with one chunk (partial null) the kernel writes out itself.
template <class T, int K, class Kernel>
void run_column_sums(int64_t n, int64_t R, int V, T* const (&out)[K], const char* name, Kernel&& kernel) {
    const int64_t blocks = (n + 32 * V - 1) / (32 * V), chunks = column_chunks(blocks, R);
    Tensor partial = chunks > 1 ? empty({K, chunks, n}, DType::F32, Device::CUDA) : Tensor();
    float* pp = chunks > 1 ? static_cast<float*>(partial.raw_data()) : nullptr;
    kernel(dim3(static_cast<unsigned>(blocks), static_cast<unsigned>(chunks)), pp, chunks);
    AC_CUDA_LAUNCH_CHECK(name);
    if (chunks > 1) add_all_chunks(pp, out, n, chunks, name);
}

// Blocks of `threads` threads of `kernel` that the GPU runs at once (its blocks an SM, times the SMs): the
// grid of a kernel whose warps take rows grid-stride, one wave over the GPU. Fixed for a kernel on a given
// GPU, so such a kernel's sums are added in the same order on every run.
template <class Kernel>
int64_t resident_blocks(Kernel kernel, int threads) {
    int device = 0, sms = 0, per_sm = 0;
    AC_CUDA_CHECK(cudaGetDevice(&device));
    AC_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    AC_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, 0));
    return static_cast<int64_t>(per_sm > 0 ? per_sm : 1) * sms;
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
