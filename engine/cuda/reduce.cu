// reduce.cu: sums and arg-maxima over the middle dim of a contiguous (O, R, I) view (sums down columns
// through column_sums.cuh), and the sum of squares of many tensors (gradient clipping). Accumulation is
// f32 in a fixed order: the same inputs give the same bits on every run. Sums of bf16 may be written in f32.
#include <algorithm>
#include <type_traits>
#include <vector>

#include "engine/cuda/cuda_ops.h"
#include "engine/cuda/device_util.cuh"
#include "engine/cuda/reduce.cuh"

namespace aclip::cuda {

using namespace reduce_kernels;

namespace {

template <class T>
__global__ void max_kernel(const T* x, T* values, int64_t* index, int64_t O, int64_t R, int64_t I) {
    const int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (p >= O * I) return;
    const int64_t o = p / I, i = p % I;
    float best = ld(x[o * R * I + i]);
    int64_t best_r = 0;
    for (int64_t r = 1; r < R; ++r) {
        if (best != best) break;  // NaN wins, as on the CPU and in PyTorch
        float v = ld(x[(o * R + r) * I + i]);
        if (v > best || v != v) {
            best = v;
            best_r = r;
        }
    }
    values[p] = st<T>(best);
    index[p] = best_r;
}

__global__ void sum_squares_kernel(const float* x, int64_t n, double* partial) {
    __shared__ float shared[32];
    float s = 0.0f;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x)
        s += x[i] * x[i];
    s = block_sum(s, shared);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

AC_REGISTER_KERNEL("sum");
AC_REGISTER_KERNEL("max_with_index");
AC_REGISTER_KERNEL("sum_of_squares");

}  // namespace

void sum(const Tensor& x, int64_t O, int64_t R, int64_t I, const Tensor& out) {
    const int64_t n = O * I;
    if (n == 0) return;
    dispatch_gpu_float(x.dtype(), "sum", [&](auto tag) {
        using T = typename decltype(tag)::type;
        const T* px = static_cast<const T*>(x.raw_data());
        auto with_output = [&](auto* po) {  // Out: T, or f32 from bf16
            using Out = std::remove_pointer_t<decltype(po)>;
            if (I == 1 && O < 4096 && R >= 8192) {  // few long rows: many blocks per row
                const int64_t chunks = std::clamp<int64_t>(R / 8192, 1, std::max<int64_t>(1, 2048 / O));
                Tensor partial = empty({chunks, O}, DType::F32, Device::CUDA);
                sum_rows_partial<T><<<dim3(chunks, O), kThreads>>>(
                    px, static_cast<float*>(partial.raw_data()), O, R, chunks);
                AC_CUDA_LAUNCH_CHECK("sum");
                Out* const outs[1] = {po};
                add_all_chunks(static_cast<const float*>(partial.raw_data()), outs, O, chunks, "sum");
                return;
            }
            if (I == 1) {  // many rows: a warp per row
                const int rows_per_block = kThreads / 32;
                sum_rows_kernel<T, Out>
                    <<<(O + rows_per_block - 1) / rows_per_block, kThreads>>>(px, po, O, R);
                AC_CUDA_LAUNCH_CHECK("sum");
                return;
            }
            // I > 1: column sums, in 16-byte packs where I and the pointer allow.
            Out* const outs[1] = {po};
            auto launch = [&](auto kernel, int V) {
                run_column_sums(n, R, V, outs, "sum", [&](dim3 grid, float* partial, int64_t chunks) {
                    kernel<<<grid, columns::kThreads>>>(px, partial, po, n, R, I, chunks);
                });
            };
            constexpr int V = vector_width<T>();
            if (I % V == 0 && all_aligned({px}, 16))
                launch(sum_columns_kernel<T, V, Out>, V);
            else
                launch(sum_columns_kernel<T, 1, Out>, 1);
        };
        if (out.dtype() == x.dtype())
            with_output(static_cast<T*>(out.raw_data()));
        else
            with_output(static_cast<float*>(out.raw_data()));  // f32 from bf16 (sum checked it)
    });
}

void max_with_index(const Tensor& x, int64_t O, int64_t R, int64_t I, const Tensor& values,
                    const Tensor& index) {
    const int64_t n = O * I;
    if (n == 0) return;
    dispatch_gpu_float(x.dtype(), "max", [&](auto tag) {
        using T = typename decltype(tag)::type;
        max_kernel<T><<<(n + kThreads - 1) / kThreads, kThreads>>>(
            static_cast<const T*>(x.raw_data()), static_cast<T*>(values.raw_data()),
            static_cast<int64_t*>(index.raw_data()), O, R, I);
        AC_CUDA_LAUNCH_CHECK("max_with_index");
    });
}

double sum_of_squares(const std::vector<Tensor>& tensors) {
    constexpr int kBlocks = 264;  // two per SM of an H100
    if (tensors.empty()) return 0.0;
    Tensor partial = empty({static_cast<int64_t>(tensors.size()), kBlocks}, DType::F64, Device::CUDA);
    double* pp = static_cast<double*>(partial.raw_data());
    for (size_t k = 0; k < tensors.size(); ++k) {
        const Tensor& t = tensors[k];
        AC_CHECK(t.dtype() == DType::F32 && t.is_contiguous(),
                 "sum_of_squares: expected contiguous f32, got ", t.desc());
        sum_squares_kernel<<<kBlocks, kThreads>>>(static_cast<const float*>(t.raw_data()), t.numel(),
                                                  pp + k * kBlocks);
        AC_CUDA_LAUNCH_CHECK("sum_of_squares");
    }
    double total = 0.0;
    for (double v : partial.to_vector<double>()) total += v;
    return total;
}

}  // namespace aclip::cuda
