// layer_norm.cu: fused LayerNorm over the last dim, rows read in 16-byte packs where they allow (each
// pack's values are converted to f32 in registers). Forward: a warp per row computes the mean, the
// variance of the centred values (two passes, as the CPU does, so no cancellation) and the normalised,
// scaled output, and saves mean and 1/std for backward. Backward: a warp per row for the input gradient;
// the weight and bias gradients are column sums (column_sums.cuh: 16-byte packs, row chunks whose f32
// partial sums are added in a fixed order, so deterministic).
// Measured on an H200 (docs/GPU_STATUS.md): a variant holding each row in registers (one read of x
// forward; one read of g and x backward with the column sums fused in) was slower, 0.101 vs 0.075 ms
// forward and 0.320 vs 0.194 ms backward at (50432, 768) bf16: at 24 values per lane and array the
// register demand left too few warps per SM to hide memory latency. These re-reads hit L1.
#include "engine/cuda/column_sums.cuh"
#include "engine/cuda/cuda_ops.h"
#include "engine/cuda/device_util.cuh"

namespace aclip::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kRowsPerBlock = kThreads / 32;

// Rows are read in packs of V elements (16-byte accesses when the row length and pointers allow, else
// V = 1), a warp's lanes taking consecutive packs.
template <class T, int V>
__global__ void layer_norm_forward_kernel(const T* x, const T* w, const T* b, T* y, float* mean_out,
                                          float* rstd_out, int64_t R, int64_t D, float eps) {
    const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= R) return;
    const T* xr = x + row * D;
    float s = 0.0f;
    for (int64_t i = lane * V; i < D; i += 32 * V) {
        const Pack<T, V> xp = load_pack<T, V>(xr + i);
#pragma unroll
        for (int k = 0; k < V; ++k) s += ld(xp.v[k]);
    }
    const float m = warp_sum(s) / static_cast<float>(D);
    float ss = 0.0f;
    for (int64_t i = lane * V; i < D; i += 32 * V) {
        const Pack<T, V> xp = load_pack<T, V>(xr + i);
#pragma unroll
        for (int k = 0; k < V; ++k) {
            const float d = ld(xp.v[k]) - m;
            ss += d * d;
        }
    }
    const float rs = rsqrtf(warp_sum(ss) / static_cast<float>(D) + eps);
    T* yr = y + row * D;
    for (int64_t i = lane * V; i < D; i += 32 * V) {
        const Pack<T, V> xp = load_pack<T, V>(xr + i);
        Pack<T, V> wp, bp, yp;
        if (w) wp = load_pack<T, V>(w + i);
        if (b) bp = load_pack<T, V>(b + i);
#pragma unroll
        for (int k = 0; k < V; ++k) {
            float v = (ld(xp.v[k]) - m) * rs;
            if (w) v *= ld(wp.v[k]);
            if (b) v += ld(bp.v[k]);
            yp.v[k] = st<T>(v);
        }
        store_pack<T, V>(yr + i, yp);
    }
    if (lane == 0) {
        mean_out[row] = m;
        rstd_out[row] = rs;
    }
}

// dxhat = g * w; dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)).
template <class T, int V>
__global__ void layer_norm_dx_kernel(const T* g, const T* x, const T* w, const float* mean, const float* rstd,
                                     T* dx, int64_t R, int64_t D) {
    const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= R) return;
    const T* gr = g + row * D;
    const T* xr = x + row * D;
    const float m = mean[row], rs = rstd[row];
    // The V values of xhat and dxhat at i.
    auto terms = [&](int64_t i, float(&xhat)[V], float(&dxhat)[V]) {
        const Pack<T, V> xp = load_pack<T, V>(xr + i), gp = load_pack<T, V>(gr + i);
        Pack<T, V> wp;
        if (w) wp = load_pack<T, V>(w + i);
#pragma unroll
        for (int k = 0; k < V; ++k) {
            xhat[k] = (ld(xp.v[k]) - m) * rs;
            dxhat[k] = ld(gp.v[k]) * (w ? ld(wp.v[k]) : 1.0f);
        }
    };
    float sum_dxhat = 0.0f, sum_dxhat_xhat = 0.0f;
    for (int64_t i = lane * V; i < D; i += 32 * V) {
        float xhat[V], dxhat[V];
        terms(i, xhat, dxhat);
#pragma unroll
        for (int k = 0; k < V; ++k) {
            sum_dxhat += dxhat[k];
            sum_dxhat_xhat += dxhat[k] * xhat[k];
        }
    }
    const float a = warp_sum(sum_dxhat) / static_cast<float>(D);
    const float c = warp_sum(sum_dxhat_xhat) / static_cast<float>(D);
    T* dr = dx + row * D;
    for (int64_t i = lane * V; i < D; i += 32 * V) {
        float xhat[V], dxhat[V];
        terms(i, xhat, dxhat);
        Pack<T, V> out;
#pragma unroll
        for (int k = 0; k < V; ++k) out.v[k] = st<T>(rs * (dxhat[k] - a - xhat[k] * c));
        store_pack<T, V>(dr + i, out);
    }
}

// The weight and bias gradients, sums over rows of g * xhat and g (column_sums.cuh): into dw and db when
// the rows are one chunk, else into partial (2, chunks, D) for layer_norm_param_finish.
template <class T, int V>
__global__ void __launch_bounds__(columns::kThreads)
    layer_norm_param_kernel(const T* g, const T* x, const float* mean, const float* rstd, float* partial,
                            T* dw, T* db, int64_t R, int64_t D, int64_t chunks) {
    columns::chunk_sums<2, V>(
        D, R, chunks,
        [&](int64_t p, int64_t r0, int64_t r_end, float(&acc)[2][V]) {
#pragma unroll 2
            for (int64_t r = r0; r < r_end; r += columns::kWarps) {
                const Pack<T, V> gp = load_pack<T, V>(g + r * D + p), xp = load_pack<T, V>(x + r * D + p);
                const float m = mean[r], rs = rstd[r];
#pragma unroll
                for (int v = 0; v < V; ++v) {
                    const float gv = ld(gp.v[v]);
                    acc[0][v] += gv * (ld(xp.v[v]) - m) * rs;
                    acc[1][v] += gv;
                }
            }
        },
        [&](int k, int64_t column, float s) {
            T* out = k == 0 ? dw : db;
            if (chunks > 1)
                partial[(k * chunks + blockIdx.y) * D + column] = s;
            else if (out)
                out[column] = st<T>(s);
        });
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
        constexpr int V = vector_width<T>();
        const T *px = static_cast<const T*>(x.raw_data()), *pw = ptr_or_null<T>(w), *pb = ptr_or_null<T>(b);
        T* py = static_cast<T*>(y.raw_data());
        auto launch = [&](auto kernel) {
            kernel<<<(R + kRowsPerBlock - 1) / kRowsPerBlock, kThreads>>>(
                px, pw, pb, py, static_cast<float*>(mean.raw_data()), static_cast<float*>(rstd.raw_data()), R,
                D, static_cast<float>(eps));
        };
        if (D % V == 0 && all_aligned({px, pw, pb, py}, 16))
            launch(layer_norm_forward_kernel<T, V>);
        else
            launch(layer_norm_forward_kernel<T, 1>);
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
        if (dx.defined()) {
            constexpr int V = vector_width<T>();
            const T* pw = ptr_or_null<T>(w);
            T* pdx = static_cast<T*>(dx.raw_data());
            auto launch = [&](auto kernel) {
                kernel<<<(R + kRowsPerBlock - 1) / kRowsPerBlock, kThreads>>>(pg, px, pw, pm, pr, pdx, R, D);
            };
            if (D % V == 0 && all_aligned({pg, px, pw, pdx}, 16))
                launch(layer_norm_dx_kernel<T, V>);
            else
                launch(layer_norm_dx_kernel<T, 1>);
            AC_CUDA_LAUNCH_CHECK("layer_norm_backward");
        }
        if (!dw.defined() && !db.defined()) return;
        T* pdw = dw.defined() ? static_cast<T*>(dw.raw_data()) : nullptr;
        T* pdb = db.defined() ? static_cast<T*>(db.raw_data()) : nullptr;
        auto launch = [&](auto kernel, int V) {
            const int64_t blocks = (D + 32 * V - 1) / (32 * V), chunks = column_chunks(blocks, R);
            Tensor partial = chunks > 1 ? empty({2, chunks, D}, DType::F32, Device::CUDA) : Tensor();
            float* pp = chunks > 1 ? static_cast<float*>(partial.raw_data()) : nullptr;
            kernel<<<dim3(blocks, chunks), columns::kThreads>>>(pg, px, pm, pr, pp, pdw, pdb, R, D, chunks);
            AC_CUDA_LAUNCH_CHECK("layer_norm_backward");
            if (chunks == 1) return;
            layer_norm_param_finish<T><<<(D + kThreads - 1) / kThreads, kThreads>>>(pp, pdw, pdb, D, chunks);
            AC_CUDA_LAUNCH_CHECK("layer_norm_backward");
        };
        constexpr int V = vector_width<T>();
        if (D % V == 0 && all_aligned({pg, px}, 16))
            launch(layer_norm_param_kernel<T, V>, V);
        else
            launch(layer_norm_param_kernel<T, 1>, 1);
    });
}

}  // namespace aclip::cuda
