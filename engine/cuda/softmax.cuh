// softmax.cuh: the kernels of softmax.cu (see there), in a header so that
// tests/cuda/test_softmax_emulated.cpp can also compile them for the CPU and run them on emulated threads
// (warp_emulation.h) against the CPU op: rows held in registers and rows looped over, forward and
// backward, softmax and log_softmax.
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "engine/cuda/device_math.cuh"
#include "engine/cuda/index_fault.cuh"

namespace aclip::cuda::softmax_kernels {

constexpr int kThreads = 256;
constexpr int kRowsPerBlock = kThreads / 32;

// Rows of up to 1024 elements are held in registers by groups of L lanes, K values a lane: lane l of a group
// holds elements l, l + L, ..., l + L (K - 1) of its row, and a warp takes 32 / L rows. Short rows take small
// groups (dispatch_per_lane), so that a warp has more than one short row's bytes in flight: an attention
// row of 197 is 16 lanes of 16 values, two rows a warp (a warp a row left it a few hundred bytes, 48% of
// the bandwidth in run 4). A group past the last row reads nothing but joins its warp's shuffles.
template <int L>
__device__ __forceinline__ int64_t group_row() {
    return warp_row() * (32 / L) + static_cast<int>(threadIdx.x % 32) / L;
}

template <int K, int L, class T>
__global__ void softmax_cached_kernel(const T* x, T* y, int64_t R, int D, bool log) {
    const int64_t row = group_row<L>();
    const int sub = threadIdx.x % L;
    if (warp_row() * (32 / L) >= R) return;  // the whole warp past the end
    const bool valid = row < R;
    const T* xr = x + row * D;
    float v[K];
    float m = -INFINITY;
#pragma unroll
    for (int k = 0; k < K; ++k) {
        const int i = sub + L * k;
        v[k] = valid && i < D ? ld(xr[i]) : -INFINITY;
        m = fmaxf(m, v[k]);
    }
    m = warp_max<L>(m);
    if (m == -INFINITY) m = 0.0f;
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < K; ++k) {
        const float e = sub + L * k < D ? expf(v[k] - m) : 0.0f;
        s += e;
        if (!log) v[k] = e;  // each exponential computed once
    }
    s = warp_sum<L>(s);
    if (!valid) return;
    T* yr = y + row * D;
    const float lse = m + logf(s), inv = 1.0f / s;
#pragma unroll
    for (int k = 0; k < K; ++k) {
        const int i = sub + L * k;
        if (i < D) yr[i] = st<T>(log ? v[k] - lse : v[k] * inv);
    }
}

// The backward of a row, in both kernels: s = the row's sum of softmax_grad_term, then
// dx = softmax_grad_input(g, y, s). softmax: dx = y (g - sum(g y)); log_softmax (y the log-probabilities):
// dx = g - exp(y) sum(g).
__device__ __forceinline__ float softmax_grad_term(float g, float y, bool log) {
    return log ? g : g * y;
}
__device__ __forceinline__ float softmax_grad_input(float g, float y, float s, bool log) {
    return log ? g - expf(y) * s : y * (g - s);
}

template <int K, int L, class T>
__global__ void softmax_backward_cached_kernel(const T* g, const T* y, T* dx, int64_t R, int D, bool log) {
    const int64_t row = group_row<L>();
    const int sub = threadIdx.x % L;
    if (warp_row() * (32 / L) >= R) return;
    const bool valid = row < R;
    const T* gr = g + row * D;
    const T* yr = y + row * D;
    float gv[K], yv[K];
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < K; ++k) {
        const int i = sub + L * k;
        gv[k] = valid && i < D ? ld(gr[i]) : 0.0f;
        yv[k] = valid && i < D ? ld(yr[i]) : 0.0f;
        s += softmax_grad_term(gv[k], yv[k], log);
    }
    s = warp_sum<L>(s);
    if (!valid) return;
    T* dr = dx + row * D;
#pragma unroll
    for (int k = 0; k < K; ++k) {
        const int i = sub + L * k;
        if (i < D) dr[i] = st<T>(softmax_grad_input(gv[k], yv[k], s, log));
    }
}

// Calls fn(integral_constant<K>, integral_constant<L>) for a row of D <= 1024 elements: groups of 4 lanes
// up to 64 elements (K = 1 .. 16), then 8, 16 and 32 lanes of 16 values, and 32 of 32 past 512; returns
// false when D > 1024 (the looping kernels).
template <class Fn>
bool dispatch_per_lane(int64_t D, Fn&& fn) {
    using std::integral_constant;
    using Four = integral_constant<int, 4>;
    using Sixteen = integral_constant<int, 16>;
    if (D <= 4) return fn(integral_constant<int, 1>{}, Four{}), true;
    if (D <= 8) return fn(integral_constant<int, 2>{}, Four{}), true;
    if (D <= 16) return fn(integral_constant<int, 4>{}, Four{}), true;
    if (D <= 32) return fn(integral_constant<int, 8>{}, Four{}), true;
    if (D <= 64) return fn(Sixteen{}, Four{}), true;
    if (D <= 128) return fn(Sixteen{}, integral_constant<int, 8>{}), true;
    if (D <= 256) return fn(Sixteen{}, Sixteen{}), true;
    if (D <= 512) return fn(Sixteen{}, integral_constant<int, 32>{}), true;
    if (D <= 1024) return fn(integral_constant<int, 32>{}, integral_constant<int, 32>{}), true;
    return false;
}

// Blocks for R rows taken by groups of L lanes (a warp a row: L = 32).
template <int L = 32>
int64_t row_blocks(int64_t R) {
    const int64_t rows = kRowsPerBlock * (32 / L);
    return (R + rows - 1) / rows;
}

template <class T>
__global__ void softmax_kernel(const T* x, T* y, int64_t R, int64_t D, bool log) {
    const int64_t row = warp_row();
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
    const int64_t row = warp_row();
    const int lane = threadIdx.x % 32;
    if (row >= R) return;
    const T* gr = g + row * D;
    const T* yr = y + row * D;
    T* dr = dx + row * D;
    float s = 0.0f;
    for (int64_t i = lane; i < D; i += 32) s += softmax_grad_term(ld(gr[i]), ld(yr[i]), log);
    s = warp_sum(s);
    for (int64_t i = lane; i < D; i += 32) {
        float gv = ld(gr[i]), yv = ld(yr[i]);
        dr[i] = st<T>(softmax_grad_input(gv, yv, s, log));
    }
}

template <class T>
__global__ void nll_sum_kernel(const T* logp, const int64_t* target, T* out, int64_t N, int64_t C,
                               IndexFault* fault, const char* op) {
    __shared__ float shared[32];
    float s = 0.0f;
    for (int64_t i = threadIdx.x; i < N; i += blockDim.x)
        if (index_in_range(fault, op, target[i], C, i)) s -= ld(logp[i * C + target[i]]);
    s = block_sum(s, shared);
    if (threadIdx.x == 0) *out = st<T>(s);
}

// dx = (softmax - onehot(target)) * g / N, g the loss's gradient read on the device (no read-back). A
// target outside [0, C) reads nothing here (nll_sum reported it).
template <class T>
__global__ void cross_entropy_backward_kernel(const T* logp, const int64_t* target, const T* g, T* dx,
                                              int64_t N, int64_t C, float inv_n) {
    const int64_t n = N * C;
    const float scale = ld(*g) * inv_n;
    for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < n;
         p += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t i = p / C, j = p % C;
        float v = expf(ld(logp[p])) * scale;
        dx[p] = st<T>(j == target[i] ? v - scale : v);
    }
}

}  // namespace aclip::cuda::softmax_kernels
