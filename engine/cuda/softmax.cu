// softmax.cu: fused softmax / log_softmax over rows (max, sum of exponentials and the output in one
// kernel), their backward, and the two halves of cross_entropy: the summed negative log-likelihood of the
// targets and the gradient softmax - onehot. Rows of up to 1024 elements (every attention row) are held in
// registers by groups of lanes, a warp taking one long row or several short ones (softmax.cuh), so each
// element is read once and written once; longer rows take a looping kernel, a warp a row, that reads them
// again per pass.
#include "engine/cuda/cuda_ops.h"
#include "engine/cuda/device_util.cuh"
#include "engine/cuda/softmax.cuh"

namespace aclip::cuda {

using namespace softmax_kernels;

namespace {

AC_REGISTER_KERNEL("softmax_rows");
AC_REGISTER_KERNEL("softmax_backward_rows");
AC_REGISTER_KERNEL("nll_sum");
AC_REGISTER_KERNEL("cross_entropy_backward");

}  // namespace

void softmax_rows(const Tensor& x, const Tensor& y, bool log) {
    const int64_t D = x.dim() ? x.size(-1) : 1, R = D ? x.numel() / D : 0;
    if (R == 0 || D == 0) return;
    dispatch_gpu_float(x.dtype(), "softmax", [&](auto tag) {
        using T = typename decltype(tag)::type;
        const T* px = static_cast<const T*>(x.raw_data());
        T* py = static_cast<T*>(y.raw_data());
        bool cached = dispatch_per_lane(D, [&](auto k, auto lanes) {
            constexpr int L = decltype(lanes)::value;
            softmax_cached_kernel<decltype(k)::value, L, T>
                <<<row_blocks<L>(R), kThreads>>>(px, py, R, static_cast<int>(D), log);
        });
        if (!cached) softmax_kernel<T><<<row_blocks(R), kThreads>>>(px, py, R, D, log);
    });
    AC_CUDA_LAUNCH_CHECK("softmax_rows");
}

void softmax_backward_rows(const Tensor& g, const Tensor& y, const Tensor& dx, bool log) {
    const int64_t D = y.dim() ? y.size(-1) : 1, R = D ? y.numel() / D : 0;
    if (R == 0 || D == 0) return;
    dispatch_gpu_float(y.dtype(), "softmax_backward", [&](auto tag) {
        using T = typename decltype(tag)::type;
        const T* pg = static_cast<const T*>(g.raw_data());
        const T* py = static_cast<const T*>(y.raw_data());
        T* pd = static_cast<T*>(dx.raw_data());
        bool cached = dispatch_per_lane(D, [&](auto k, auto lanes) {
            constexpr int L = decltype(lanes)::value;
            softmax_backward_cached_kernel<decltype(k)::value, L, T>
                <<<row_blocks<L>(R), kThreads>>>(pg, py, pd, R, static_cast<int>(D), log);
        });
        if (!cached) softmax_backward_kernel<T><<<row_blocks(R), kThreads>>>(pg, py, pd, R, D, log);
    });
    AC_CUDA_LAUNCH_CHECK("softmax_backward_rows");
}

void nll_sum(const Tensor& logp, const Tensor& target, const Tensor& out) {
    const int64_t N = logp.size(0), C = logp.size(1);
    dispatch_gpu_float(logp.dtype(), "cross_entropy", [&](auto tag) {
        using T = typename decltype(tag)::type;
        nll_sum_kernel<T><<<1, 1024>>>(
            static_cast<const T*>(logp.raw_data()), static_cast<const int64_t*>(target.raw_data()),
            static_cast<T*>(out.raw_data()), N, C, index_fault_record(), "cross_entropy (its target)");
    });
    AC_CUDA_LAUNCH_CHECK("nll_sum");
}

void cross_entropy_backward(const Tensor& logp, const Tensor& target, const Tensor& g, const Tensor& dx) {
    const int64_t N = logp.size(0), C = logp.size(1);
    if (N * C == 0) return;
    dispatch_gpu_float(logp.dtype(), "cross_entropy_backward", [&](auto tag) {
        using T = typename decltype(tag)::type;
        cross_entropy_backward_kernel<T><<<grid_for(N * C, kThreads), kThreads>>>(
            static_cast<const T*>(logp.raw_data()), static_cast<const int64_t*>(target.raw_data()),
            static_cast<const T*>(g.raw_data()), static_cast<T*>(dx.raw_data()), N, C,
            static_cast<float>(1.0 / static_cast<double>(N)));
    });
    AC_CUDA_LAUNCH_CHECK("cross_entropy_backward");
}

}  // namespace aclip::cuda
