// softmax.cu: fused softmax / log_softmax over rows (max, sum of exponentials and the output in one
// kernel, a warp per row), their backward, and the two halves of cross_entropy: the summed negative
// log-likelihood of the targets and the gradient softmax - onehot. Rows of up to 1024 elements (every
// attention row) are held in registers, K per lane, so each element is read once and written once;
// longer rows take a looping kernel that reads them again per pass.
#include "engine/cuda/cuda_ops.h"
#include "engine/cuda/device_util.cuh"

namespace aclip::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kRowsPerBlock = kThreads / 32;

// Lane l holds elements l, l + 32, ..., l + 32 (K - 1) of its row.
template <int K, class T>
__global__ void softmax_cached_kernel(const T* x, T* y, int64_t R, int D, bool log) {
    const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= R) return;
    const T* xr = x + row * D;
    float v[K];
    float m = -INFINITY;
#pragma unroll
    for (int k = 0; k < K; ++k) {
        const int i = lane + 32 * k;
        v[k] = i < D ? ld(xr[i]) : -INFINITY;
        m = fmaxf(m, v[k]);
    }
    m = warp_max(m);
    if (m == -INFINITY) m = 0.0f;
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < K; ++k) {
        const float e = lane + 32 * k < D ? expf(v[k] - m) : 0.0f;
        s += e;
        if (!log) v[k] = e;  // each exponential computed once
    }
    s = warp_sum(s);
    T* yr = y + row * D;
    const float lse = m + logf(s), inv = 1.0f / s;
#pragma unroll
    for (int k = 0; k < K; ++k) {
        const int i = lane + 32 * k;
        if (i < D) yr[i] = st<T>(log ? v[k] - lse : v[k] * inv);
    }
}

template <int K, class T>
__global__ void softmax_backward_cached_kernel(const T* g, const T* y, T* dx, int64_t R, int D, bool log) {
    const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= R) return;
    const T* gr = g + row * D;
    const T* yr = y + row * D;
    float gv[K], yv[K];
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < K; ++k) {
        const int i = lane + 32 * k;
        gv[k] = i < D ? ld(gr[i]) : 0.0f;
        yv[k] = i < D ? ld(yr[i]) : 0.0f;
        s += log ? gv[k] : gv[k] * yv[k];
    }
    s = warp_sum(s);
    T* dr = dx + row * D;
#pragma unroll
    for (int k = 0; k < K; ++k) {
        const int i = lane + 32 * k;
        if (i < D) dr[i] = st<T>(log ? gv[k] - expf(yv[k]) * s : yv[k] * (gv[k] - s));
    }
}

// Calls fn(integral_constant<K>) with the smallest K in {1, 2, 4, 8, 16, 32} such that 32 K >= D;
// returns false when D > 1024.
template <class Fn>
bool dispatch_per_lane(int64_t D, Fn&& fn) {
    if (D <= 32) return fn(std::integral_constant<int, 1>{}), true;
    if (D <= 64) return fn(std::integral_constant<int, 2>{}), true;
    if (D <= 128) return fn(std::integral_constant<int, 4>{}), true;
    if (D <= 256) return fn(std::integral_constant<int, 8>{}), true;
    if (D <= 512) return fn(std::integral_constant<int, 16>{}), true;
    if (D <= 1024) return fn(std::integral_constant<int, 32>{}), true;
    return false;
}

template <class T>
__global__ void softmax_kernel(const T* x, T* y, int64_t R, int64_t D, bool log) {
    const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= R) return;
    const T* xr = x + row * D;
    T* yr = y + row * D;
    float m = -INFINITY;
    for (int64_t i = lane; i < D; i += 32) m = fmaxf(m, ld(xr[i]));
    m = warp_max(m);
    if (m == -INFINITY) m = 0.0f;  // a fully masked row: every exp below is 0, as on the CPU
    float s = 0.0f;
    for (int64_t i = lane; i < D; i += 32) s += expf(ld(xr[i]) - m);
    s = warp_sum(s);
    if (log) {
        const float lse = m + logf(s);
        for (int64_t i = lane; i < D; i += 32) yr[i] = st<T>(ld(xr[i]) - lse);
    } else {
        const float inv = 1.0f / s;
        for (int64_t i = lane; i < D; i += 32) yr[i] = st<T>(expf(ld(xr[i]) - m) * inv);
    }
}

template <class T>
__global__ void softmax_backward_kernel(const T* g, const T* y, T* dx, int64_t R, int64_t D, bool log) {
    const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= R) return;
    const T* gr = g + row * D;
    const T* yr = y + row * D;
    T* dr = dx + row * D;
    float s = 0.0f;
    for (int64_t i = lane; i < D; i += 32) s += log ? ld(gr[i]) : ld(gr[i]) * ld(yr[i]);
    s = warp_sum(s);
    for (int64_t i = lane; i < D; i += 32) {
        float gv = ld(gr[i]), yv = ld(yr[i]);
        dr[i] = st<T>(log ? gv - expf(yv) * s : yv * (gv - s));
    }
}

template <class T>
__global__ void nll_sum_kernel(const T* logp, const int64_t* target, T* out, int64_t N, int64_t C) {
    __shared__ float shared[32];
    float s = 0.0f;
    for (int64_t i = threadIdx.x; i < N; i += blockDim.x) s -= ld(logp[i * C + target[i]]);
    s = block_sum(s, shared);
    if (threadIdx.x == 0) *out = st<T>(s);
}

template <class T>
__global__ void cross_entropy_backward_kernel(const T* logp, const int64_t* target, T* dx, int64_t N,
                                              int64_t C, float scale) {
    const int64_t n = N * C;
    for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < n;
         p += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t i = p / C, j = p % C;
        float v = expf(ld(logp[p])) * scale;
        dx[p] = st<T>(j == target[i] ? v - scale : v);
    }
}

AC_REGISTER_KERNEL("softmax_rows");
AC_REGISTER_KERNEL("softmax_backward_rows");
AC_REGISTER_KERNEL("nll_sum");
AC_REGISTER_KERNEL("cross_entropy_backward");

int64_t row_blocks(int64_t R) {
    return (R + kRowsPerBlock - 1) / kRowsPerBlock;
}

}  // namespace

void softmax_rows(const Tensor& x, const Tensor& y, bool log) {
    const int64_t D = x.dim() ? x.size(-1) : 1, R = D ? x.numel() / D : 0;
    if (R == 0 || D == 0) return;
    dispatch_gpu_float(x.dtype(), "softmax", [&](auto tag) {
        using T = typename decltype(tag)::type;
        const T* px = static_cast<const T*>(x.raw_data());
        T* py = static_cast<T*>(y.raw_data());
        bool cached = dispatch_per_lane(D, [&](auto k) {
            softmax_cached_kernel<decltype(k)::value, T>
                <<<row_blocks(R), kThreads>>>(px, py, R, static_cast<int>(D), log);
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
        bool cached = dispatch_per_lane(D, [&](auto k) {
            softmax_backward_cached_kernel<decltype(k)::value, T>
                <<<row_blocks(R), kThreads>>>(pg, py, pd, R, static_cast<int>(D), log);
        });
        if (!cached) softmax_backward_kernel<T><<<row_blocks(R), kThreads>>>(pg, py, pd, R, D, log);
    });
    AC_CUDA_LAUNCH_CHECK("softmax_backward_rows");
}

void nll_sum(const Tensor& logp, const Tensor& target, const Tensor& out) {
    const int64_t N = logp.size(0), C = logp.size(1);
    dispatch_gpu_float(logp.dtype(), "cross_entropy", [&](auto tag) {
        using T = typename decltype(tag)::type;
        nll_sum_kernel<T><<<1, 1024>>>(static_cast<const T*>(logp.raw_data()),
                                       static_cast<const int64_t*>(target.raw_data()),
                                       static_cast<T*>(out.raw_data()), N, C);
    });
    AC_CUDA_LAUNCH_CHECK("nll_sum");
}

void cross_entropy_backward(const Tensor& logp, const Tensor& target, double scale, const Tensor& dx) {
    const int64_t N = logp.size(0), C = logp.size(1);
    if (N * C == 0) return;
    dispatch_gpu_float(logp.dtype(), "cross_entropy_backward", [&](auto tag) {
        using T = typename decltype(tag)::type;
        cross_entropy_backward_kernel<T><<<grid_for(N * C, kThreads), kThreads>>>(
            static_cast<const T*>(logp.raw_data()), static_cast<const int64_t*>(target.raw_data()),
            static_cast<T*>(dx.raw_data()), N, C, static_cast<float>(scale));
    });
    AC_CUDA_LAUNCH_CHECK("cross_entropy_backward");
}

}  // namespace aclip::cuda
