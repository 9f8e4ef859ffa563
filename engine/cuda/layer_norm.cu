// layer_norm.cu: fused LayerNorm over the last dim. Forward: a warp per row computes the mean, the
// variance of the centred values (two passes, as the CPU does, so no cancellation) and the normalised,
// scaled output, and saves mean and 1/std for backward. Backward: the input gradient row by row, and
// the weight and bias gradients as column sums over rows.
// Rows of up to 1024 elements (every width of the models) are held in registers, K per lane: forward
// reads x once; backward reads g and x once, each warp accumulating its columns' weight and bias sums
// over the rows it visits, which the block adds in warp order and a second kernel adds over blocks
// (deterministic). Wider rows take looping kernels that read rows again per pass.
#include "engine/cuda/cuda_ops.h"
#include "engine/cuda/device_util.cuh"

namespace aclip::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kRowsPerBlock = kThreads / 32;

template <class T>
__global__ void layer_norm_forward_kernel(const T* x, const T* w, const T* b, T* y, float* mean_out,
                                          float* rstd_out, int64_t R, int64_t D, float eps) {
    const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= R) return;
    const T* xr = x + row * D;
    float s = 0.0f;
    for (int64_t i = lane; i < D; i += 32) s += ld(xr[i]);
    const float m = warp_sum(s) / static_cast<float>(D);
    float ss = 0.0f;
    for (int64_t i = lane; i < D; i += 32) {
        float d = ld(xr[i]) - m;
        ss += d * d;
    }
    const float rs = rsqrtf(warp_sum(ss) / static_cast<float>(D) + eps);
    T* yr = y + row * D;
    for (int64_t i = lane; i < D; i += 32) {
        float v = (ld(xr[i]) - m) * rs;
        if (w) v *= ld(w[i]);
        if (b) v += ld(b[i]);
        yr[i] = st<T>(v);
    }
    if (lane == 0) {
        mean_out[row] = m;
        rstd_out[row] = rs;
    }
}

template <class T>
__global__ void layer_norm_dx_kernel(const T* g, const T* x, const T* w, const float* mean, const float* rstd,
                                     T* dx, int64_t R, int64_t D) {
    const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= R) return;
    const T* gr = g + row * D;
    const T* xr = x + row * D;
    const float m = mean[row], rs = rstd[row];
    float sum_dxhat = 0.0f, sum_dxhat_xhat = 0.0f;
    for (int64_t i = lane; i < D; i += 32) {
        float xhat = (ld(xr[i]) - m) * rs;
        float dxhat = ld(gr[i]) * (w ? ld(w[i]) : 1.0f);
        sum_dxhat += dxhat;
        sum_dxhat_xhat += dxhat * xhat;
    }
    const float a = warp_sum(sum_dxhat) / static_cast<float>(D);
    const float c = warp_sum(sum_dxhat_xhat) / static_cast<float>(D);
    T* dr = dx + row * D;
    for (int64_t i = lane; i < D; i += 32) {
        float xhat = (ld(xr[i]) - m) * rs;
        float dxhat = ld(gr[i]) * (w ? ld(w[i]) : 1.0f);
        dr[i] = st<T>(rs * (dxhat - a - xhat * c));
    }
}

// partial (2, chunks, D): sums of g * xhat (weight) and g (bias) over the rows of chunk blockIdx.y.
template <class T>
__global__ void layer_norm_param_partial(const T* g, const T* x, const float* mean, const float* rstd,
                                         float* partial, int64_t R, int64_t D, int64_t chunks) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    const int64_t c = blockIdx.y;
    if (i >= D) return;
    float sw = 0.0f, sb = 0.0f;
    for (int64_t r = c * R / chunks; r < (c + 1) * R / chunks; ++r) {
        float gv = ld(g[r * D + i]);
        sw += gv * (ld(x[r * D + i]) - mean[r]) * rstd[r];
        sb += gv;
    }
    partial[c * D + i] = sw;
    partial[(chunks + c) * D + i] = sb;
}

template <class T>
__global__ void layer_norm_param_finish(const float* partial, T* dw, T* db, int64_t D, int64_t chunks) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= D) return;
    float sw = 0.0f, sb = 0.0f;
    for (int64_t c = 0; c < chunks; ++c) {
        sw += partial[c * D + i];
        sb += partial[(chunks + c) * D + i];
    }
    if (dw) dw[i] = st<T>(sw);
    if (db) db[i] = st<T>(sb);
}

// The register-cached kernels: lane l holds elements l, l + 32, ..., l + 32 (K - 1) of a row.
template <int K, class T>
__global__ void layer_norm_forward_cached(const T* x, const T* w, const T* b, T* y, float* mean_out,
                                          float* rstd_out, int64_t R, int D, float eps) {
    const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= R) return;
    const T* xr = x + row * D;
    float v[K];
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < K; ++k) {
        const int i = lane + 32 * k;
        v[k] = i < D ? ld(xr[i]) : 0.0f;
        s += v[k];
    }
    const float m = warp_sum(s) / static_cast<float>(D);
    float ss = 0.0f;
#pragma unroll
    for (int k = 0; k < K; ++k) {
        const float d = lane + 32 * k < D ? v[k] - m : 0.0f;
        ss += d * d;
    }
    const float rs = rsqrtf(warp_sum(ss) / static_cast<float>(D) + eps);
    T* yr = y + row * D;
#pragma unroll
    for (int k = 0; k < K; ++k) {
        const int i = lane + 32 * k;
        if (i >= D) continue;
        float o = (v[k] - m) * rs;
        if (w) o *= ld(w[i]);
        if (b) o += ld(b[i]);
        yr[i] = st<T>(o);
    }
    if (lane == 0) {
        mean_out[row] = m;
        rstd_out[row] = rs;
    }
}

// partial (2, gridDim.x, D): this block's sums of g * xhat (weight) and g (bias) over its rows.
template <int K, class T>
__global__ void layer_norm_backward_cached(const T* g, const T* x, const T* w, const float* mean,
                                           const float* rstd, T* dx, float* partial, int64_t R, int D) {
    __shared__ float col_w[32 * K], col_b[32 * K];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    float wv[K], acc_w[K], acc_b[K];
#pragma unroll
    for (int k = 0; k < K; ++k) {
        const int i = lane + 32 * k;
        wv[k] = w && i < D ? ld(w[i]) : 1.0f;
        acc_w[k] = acc_b[k] = 0.0f;
    }
    for (int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + warp; row < R;
         row += static_cast<int64_t>(gridDim.x) * kRowsPerBlock) {
        const T* gr = g + row * D;
        const T* xr = x + row * D;
        const float m = mean[row], rs = rstd[row];
        float xhat[K], dxhat[K];
        float sum_dxhat = 0.0f, sum_dxhat_xhat = 0.0f;
#pragma unroll
        for (int k = 0; k < K; ++k) {
            const int i = lane + 32 * k;
            const float gv = i < D ? ld(gr[i]) : 0.0f;
            xhat[k] = i < D ? (ld(xr[i]) - m) * rs : 0.0f;
            dxhat[k] = gv * wv[k];
            sum_dxhat += dxhat[k];
            sum_dxhat_xhat += dxhat[k] * xhat[k];
            acc_w[k] += gv * xhat[k];
            acc_b[k] += gv;
        }
        const float a = warp_sum(sum_dxhat) / static_cast<float>(D);
        const float c = warp_sum(sum_dxhat_xhat) / static_cast<float>(D);
        if (dx) {
            T* dr = dx + row * D;
#pragma unroll
            for (int k = 0; k < K; ++k) {
                const int i = lane + 32 * k;
                if (i < D) dr[i] = st<T>(rs * (dxhat[k] - a - xhat[k] * c));
            }
        }
    }
    // The block's column sums, added warp after warp (a fixed order: the same bits on every run).
    for (int k = 0; k < K; ++k) col_w[lane + 32 * k] = col_b[lane + 32 * k] = 0.0f;
    __syncthreads();
    for (int turn = 0; turn < kRowsPerBlock; ++turn) {
        if (warp == turn) {
#pragma unroll
            for (int k = 0; k < K; ++k) {
                col_w[lane + 32 * k] += acc_w[k];
                col_b[lane + 32 * k] += acc_b[k];
            }
        }
        __syncthreads();
    }
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        partial[static_cast<int64_t>(blockIdx.x) * D + i] = col_w[i];
        partial[(static_cast<int64_t>(gridDim.x) + blockIdx.x) * D + i] = col_b[i];
    }
}

// Calls fn(integral_constant<K>) with the smallest K in {1, 2, 4, 8, 12, 16, 24, 32} with 32 K >= D;
// false when D > 1024.
template <class Fn>
bool dispatch_per_lane(int64_t D, Fn&& fn) {
    if (D <= 32) return fn(std::integral_constant<int, 1>{}), true;
    if (D <= 64) return fn(std::integral_constant<int, 2>{}), true;
    if (D <= 128) return fn(std::integral_constant<int, 4>{}), true;
    if (D <= 256) return fn(std::integral_constant<int, 8>{}), true;
    if (D <= 384) return fn(std::integral_constant<int, 12>{}), true;
    if (D <= 512) return fn(std::integral_constant<int, 16>{}), true;
    if (D <= 768) return fn(std::integral_constant<int, 24>{}), true;
    if (D <= 1024) return fn(std::integral_constant<int, 32>{}), true;
    return false;
}

AC_REGISTER_KERNEL("layer_norm_forward");
AC_REGISTER_KERNEL("layer_norm_backward");

template <class T>
const T* ptr_or_null(const Tensor& t) {
    return t.defined() ? static_cast<const T*>(t.raw_data()) : nullptr;
}

}  // namespace

void layer_norm_forward(const Tensor& x, const Tensor& w, const Tensor& b, double eps, const Tensor& y,
                        const Tensor& mean, const Tensor& rstd) {
    const int64_t D = x.size(-1), R = D ? x.numel() / D : 0;
    if (R == 0) return;
    dispatch_gpu_float(x.dtype(), "layer_norm", [&](auto tag) {
        using T = typename decltype(tag)::type;
        const int64_t blocks = (R + kRowsPerBlock - 1) / kRowsPerBlock;
        const bool cached = dispatch_per_lane(D, [&](auto k) {
            layer_norm_forward_cached<decltype(k)::value, T><<<blocks, kThreads>>>(
                static_cast<const T*>(x.raw_data()), ptr_or_null<T>(w), ptr_or_null<T>(b),
                static_cast<T*>(y.raw_data()), static_cast<float*>(mean.raw_data()),
                static_cast<float*>(rstd.raw_data()), R, static_cast<int>(D), static_cast<float>(eps));
        });
        if (cached) return;
        layer_norm_forward_kernel<T>
            <<<blocks, kThreads>>>(static_cast<const T*>(x.raw_data()), ptr_or_null<T>(w), ptr_or_null<T>(b),
                                   static_cast<T*>(y.raw_data()), static_cast<float*>(mean.raw_data()),
                                   static_cast<float*>(rstd.raw_data()), R, D, static_cast<float>(eps));
    });
    AC_CUDA_LAUNCH_CHECK("layer_norm_forward");
}

void layer_norm_backward(const Tensor& g, const Tensor& x, const Tensor& w, const Tensor& mean,
                         const Tensor& rstd, const Tensor& dx, const Tensor& dw, const Tensor& db) {
    const int64_t D = x.size(-1), R = D ? x.numel() / D : 0;
    if (R == 0) return;
    dispatch_gpu_float(x.dtype(), "layer_norm_backward", [&](auto tag) {
        using T = typename decltype(tag)::type;
        const T* pg = static_cast<const T*>(g.raw_data());
        const T* px = static_cast<const T*>(x.raw_data());
        const float* pm = static_cast<const float*>(mean.raw_data());
        const float* pr = static_cast<const float*>(rstd.raw_data());
        const int64_t blocks = std::min<int64_t>((R + kRowsPerBlock - 1) / kRowsPerBlock, 132 * 4);
        Tensor block_sums = D <= 1024 ? empty({2, blocks, D}, DType::F32, Device::CUDA) : Tensor();
        const bool cached = dispatch_per_lane(D, [&](auto k) {
            layer_norm_backward_cached<decltype(k)::value, T><<<blocks, kThreads>>>(
                pg, px, ptr_or_null<T>(w), pm, pr, dx.defined() ? static_cast<T*>(dx.raw_data()) : nullptr,
                static_cast<float*>(block_sums.raw_data()), R, static_cast<int>(D));
        });
        if (cached) {
            AC_CUDA_LAUNCH_CHECK("layer_norm_backward");
            if (!dw.defined() && !db.defined()) return;
            layer_norm_param_finish<T><<<(D + kThreads - 1) / kThreads, kThreads>>>(
                static_cast<const float*>(block_sums.raw_data()),
                dw.defined() ? static_cast<T*>(dw.raw_data()) : nullptr,
                db.defined() ? static_cast<T*>(db.raw_data()) : nullptr, D, blocks);
            AC_CUDA_LAUNCH_CHECK("layer_norm_backward");
            return;
        }
        if (dx.defined()) {
            layer_norm_dx_kernel<T><<<(R + kRowsPerBlock - 1) / kRowsPerBlock, kThreads>>>(
                pg, px, ptr_or_null<T>(w), pm, pr, static_cast<T*>(dx.raw_data()), R, D);
            AC_CUDA_LAUNCH_CHECK("layer_norm_backward");
        }
        if (!dw.defined() && !db.defined()) return;
        const int64_t chunks = std::clamp<int64_t>(R / 32, 1, 256);
        Tensor partial = empty({2, chunks, D}, DType::F32, Device::CUDA);
        dim3 grid((D + kThreads - 1) / kThreads, chunks);
        layer_norm_param_partial<T>
            <<<grid, kThreads>>>(pg, px, pm, pr, static_cast<float*>(partial.raw_data()), R, D, chunks);
        AC_CUDA_LAUNCH_CHECK("layer_norm_backward");
        layer_norm_param_finish<T><<<(D + kThreads - 1) / kThreads, kThreads>>>(
            static_cast<const float*>(partial.raw_data()),
            dw.defined() ? static_cast<T*>(dw.raw_data()) : nullptr,
            db.defined() ? static_cast<T*>(db.raw_data()) : nullptr, D, chunks);
        AC_CUDA_LAUNCH_CHECK("layer_norm_backward");
    });
}

}  // namespace aclip::cuda
