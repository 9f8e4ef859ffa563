// attention.cu: fused scaled-dot-product attention. The (Tq, Tk) score matrix never reaches device
// memory: forward streams key/value tiles through shared memory and keeps a running max and sum per
// query (the online softmax of FlashAttention), saving only the log-sum-exp of each row for backward.
// Backward recomputes the probabilities tile by tile, FlashAttention-2 style, in two kernels without
// atomics: one owns key rows (dK, dV), the other query rows (dQ). Each thread owns one row and keeps
// its vectors in registers, in f32. These are the kernels for f32 inputs and the specification of the
// tensor-core kernels that bf16 inputs run (attention_mma.cu). Head dims 32 and 64.
// Also here: the CLS row of the attention probabilities, which the attentive mask reads from the EMA
// model and which a fused kernel cannot return.
#include "engine/cuda/attention_mma.h"
#include "engine/cuda/cuda_ops.h"
#include "engine/cuda/device_util.cuh"

namespace aclip::cuda {

namespace {

constexpr int kRows = 64;  // query (or key) rows per block, one per thread
constexpr int kTile = 32;  // key (or query) rows per shared-memory tile

// Rows row0 .. row0 + kTile - 1 of two (rows, D) matrices into shared tiles, as f32; zeros past `rows`.
template <int D, class T>
__device__ __forceinline__ void load_tile_pair(float (*ta)[D], float (*tb)[D], const T* a, const T* b,
                                               int64_t row0, int64_t rows) {
    for (int e = threadIdx.x; e < kTile * D; e += blockDim.x) {
        const int r = e / D, d = e % D;
        const bool in = row0 + r < rows;
        ta[r][d] = in ? ld(a[(row0 + r) * D + d]) : 0.0f;
        tb[r][d] = in ? ld(b[(row0 + r) * D + d]) : 0.0f;
    }
}

template <int D, class T>
__global__ void flash_forward_kernel(const T* q, const T* k, const T* v, T* out, float* lse, int64_t Tq,
                                     int64_t Tk, float scale, bool causal) {
    __shared__ float ks[kTile][D];
    __shared__ float vs[kTile][D];
    const int64_t bh = blockIdx.y;
    const int64_t i = static_cast<int64_t>(blockIdx.x) * kRows + threadIdx.x;
    const T* qb = q + bh * Tq * D;
    const T* kb = k + bh * Tk * D;
    const T* vb = v + bh * Tk * D;
    float qr[D], acc[D];
    const bool active = i < Tq;
#pragma unroll
    for (int d = 0; d < D; ++d) {
        qr[d] = active ? ld(qb[i * D + d]) * scale : 0.0f;
        acc[d] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    const int64_t last_key = causal ? min(Tk, static_cast<int64_t>(blockIdx.x + 1) * kRows) : Tk;
    for (int64_t j0 = 0; j0 < last_key; j0 += kTile) {
        __syncthreads();
        load_tile_pair<D>(ks, vs, kb, vb, j0, Tk);
        __syncthreads();
        if (!active) continue;
        for (int r = 0; r < kTile; ++r) {
            const int64_t j = j0 + r;
            if (j >= Tk || (causal && j > i)) break;
            float s = 0.0f;
#pragma unroll
            for (int d = 0; d < D; ++d) s += qr[d] * ks[r][d];
            const float m_new = fmaxf(m, s);
            const float correction = expf(m - m_new);  // 0 on the first key (m = -inf)
            const float p = expf(s - m_new);
            l = l * correction + p;
#pragma unroll
            for (int d = 0; d < D; ++d) acc[d] = acc[d] * correction + p * vs[r][d];
            m = m_new;
        }
    }
    if (!active) return;
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
    for (int d = 0; d < D; ++d) out[bh * Tq * D + i * D + d] = st<T>(acc[d] * inv);
    lse[bh * Tq + i] = l > 0.0f ? m + logf(l) : -INFINITY;
}

// delta[i] = sum_d dO[i, d] * O[i, d]: the row term of the softmax backward.
template <int D, class T>
__global__ void flash_delta_kernel(const T* out, const T* g, float* delta, int64_t rows) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= rows) return;
    float s = 0.0f;
#pragma unroll
    for (int d = 0; d < D; ++d) s += ld(out[i * D + d]) * ld(g[i * D + d]);
    delta[i] = s;
}

// One thread per key row j: dV_j = sum_i P_ij dO_i, dK_j = scale * sum_i dS_ij q_i.
template <int D, class T>
__global__ void flash_backward_kv_kernel(const T* q, const T* k, const T* v, const T* g, const float* lse,
                                         const float* delta, T* dk, T* dv, int64_t Tq, int64_t Tk,
                                         float scale, bool causal) {
    __shared__ float qs[kTile][D];
    __shared__ float gs[kTile][D];
    __shared__ float ls[kTile], ds[kTile];
    const int64_t bh = blockIdx.y;
    const int64_t j = static_cast<int64_t>(blockIdx.x) * kRows + threadIdx.x;
    const bool active = j < Tk;
    float kr[D], vr[D], dkr[D], dvr[D];
#pragma unroll
    for (int d = 0; d < D; ++d) {
        kr[d] = active ? ld(k[(bh * Tk + j) * D + d]) : 0.0f;
        vr[d] = active ? ld(v[(bh * Tk + j) * D + d]) : 0.0f;
        dkr[d] = dvr[d] = 0.0f;
    }
    const int64_t first_query = causal ? static_cast<int64_t>(blockIdx.x) * kRows : 0;
    for (int64_t i0 = first_query / kTile * kTile; i0 < Tq; i0 += kTile) {
        __syncthreads();
        load_tile_pair<D>(qs, gs, q + bh * Tq * D, g + bh * Tq * D, i0, Tq);
        for (int r = threadIdx.x; r < kTile; r += blockDim.x) {
            const bool in = i0 + r < Tq;
            ls[r] = in ? lse[bh * Tq + i0 + r] : 0.0f;
            ds[r] = in ? delta[bh * Tq + i0 + r] : 0.0f;
        }
        __syncthreads();
        if (!active) continue;
        for (int r = 0; r < kTile; ++r) {
            const int64_t i = i0 + r;
            if (i >= Tq) break;
            if (causal && j > i) continue;
            float s = 0.0f, dp = 0.0f;
#pragma unroll
            for (int d = 0; d < D; ++d) {
                s += qs[r][d] * kr[d];
                dp += gs[r][d] * vr[d];
            }
            const float p = ls[r] == -INFINITY ? 0.0f : expf(s * scale - ls[r]);
            const float dsv = p * (dp - ds[r]);
#pragma unroll
            for (int d = 0; d < D; ++d) {
                dvr[d] += p * gs[r][d];
                dkr[d] += dsv * qs[r][d];
            }
        }
    }
    if (!active) return;
#pragma unroll
    for (int d = 0; d < D; ++d) {
        dk[(bh * Tk + j) * D + d] = st<T>(dkr[d] * scale);
        dv[(bh * Tk + j) * D + d] = st<T>(dvr[d]);
    }
}

// One thread per query row i: dQ_i = scale * sum_j dS_ij k_j.
template <int D, class T>
__global__ void flash_backward_q_kernel(const T* q, const T* k, const T* v, const T* g, const float* lse,
                                        const float* delta, T* dq, int64_t Tq, int64_t Tk, float scale,
                                        bool causal) {
    __shared__ float ks[kTile][D];
    __shared__ float vs[kTile][D];
    const int64_t bh = blockIdx.y;
    const int64_t i = static_cast<int64_t>(blockIdx.x) * kRows + threadIdx.x;
    const bool active = i < Tq;
    float qr[D], gr[D], dqr[D];
#pragma unroll
    for (int d = 0; d < D; ++d) {
        qr[d] = active ? ld(q[(bh * Tq + i) * D + d]) : 0.0f;
        gr[d] = active ? ld(g[(bh * Tq + i) * D + d]) : 0.0f;
        dqr[d] = 0.0f;
    }
    const float li = active ? lse[bh * Tq + i] : 0.0f, di = active ? delta[bh * Tq + i] : 0.0f;
    const int64_t last_key = causal ? min(Tk, static_cast<int64_t>(blockIdx.x + 1) * kRows) : Tk;
    for (int64_t j0 = 0; j0 < last_key; j0 += kTile) {
        __syncthreads();
        load_tile_pair<D>(ks, vs, k + bh * Tk * D, v + bh * Tk * D, j0, Tk);
        __syncthreads();
        if (!active || li == -INFINITY) continue;
        for (int r = 0; r < kTile; ++r) {
            const int64_t j = j0 + r;
            if (j >= Tk || (causal && j > i)) break;
            float s = 0.0f, dp = 0.0f;
#pragma unroll
            for (int d = 0; d < D; ++d) {
                s += qr[d] * ks[r][d];
                dp += gr[d] * vs[r][d];
            }
            const float dsv = expf(s * scale - li) * (dp - di);
#pragma unroll
            for (int d = 0; d < D; ++d) dqr[d] += dsv * ks[r][d];
        }
    }
    if (!active) return;
#pragma unroll
    for (int d = 0; d < D; ++d) dq[(bh * Tq + i) * D + d] = st<T>(dqr[d] * scale);
}

// probs[b, h, j] = softmax_j(scale * q[b, h, 0] . k[b, h, j]); one block per (b, h), scores in shared
// memory (Tk floats). q and k are (B, H, T, D) views with a contiguous last dim: element (b, h, t, d) at
// b * s[0] + h * s[1] + t * s[2] + d, so the q and k of a packed projection are read in place.
struct ViewStrides {
    int64_t batch, head, row;
};
template <class T>
__global__ void cls_probs_kernel(const T* q, ViewStrides qs, const T* k, ViewStrides ks, T* probs, int64_t H,
                                 int64_t Tk, int64_t D, float scale) {
    extern __shared__ float scores[];
    __shared__ float shared[32];
    const int64_t bh = blockIdx.x, b = bh / H, h = bh % H;
    const T* q0 = q + b * qs.batch + h * qs.head;
    const T* kb = k + b * ks.batch + h * ks.head;
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < Tk; j += blockDim.x) {
        float s = 0.0f;
        for (int64_t d = 0; d < D; ++d) s += ld(q0[d]) * ld(kb[j * ks.row + d]);
        scores[j] = s * scale;
        m = fmaxf(m, scores[j]);
    }
    m = block_max(m, shared);
    float l = 0.0f;
    for (int64_t j = threadIdx.x; j < Tk; j += blockDim.x) l += expf(scores[j] - m);
    l = block_sum(l, shared);
    for (int64_t j = threadIdx.x; j < Tk; j += blockDim.x)
        probs[bh * Tk + j] = st<T>(expf(scores[j] - m) / l);
}

AC_REGISTER_KERNEL("flash_attention_forward");
AC_REGISTER_KERNEL("flash_attention_backward");
AC_REGISTER_KERNEL("attention_cls_probs");

template <class Fn>
void dispatch_head_dim(int64_t D, Fn&& fn) {
    if (D == 32)
        fn(std::integral_constant<int, 32>{});
    else if (D == 64)
        fn(std::integral_constant<int, 64>{});
    else
        AC_FAIL("flash attention: head dim ", D, " is not supported (32 or 64)");
}

}  // namespace

bool flash_attention_supports(int64_t head_dim) {
    return head_dim == 32 || head_dim == 64;
}

void flash_attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, bool causal,
                             const Tensor& out, const Tensor& lse) {
    const int64_t BH = q.size(0) * q.size(1), Tq = q.size(2), Tk = k.size(2), D = q.size(3);
    if (BH * Tq == 0 || flash_forward_mma(q, k, v, causal, out, lse)) return;
    AC_CHECK(q.is_contiguous() && k.is_contiguous() && v.is_contiguous() && out.is_contiguous(),
             "flash_attention_forward: the f32 kernels take contiguous tensors, got ", q.desc(), ", ",
             out.desc());
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
    dispatch_gpu_float(q.dtype(), "flash_attention", [&](auto tag) {
        using T = typename decltype(tag)::type;
        dispatch_head_dim(D, [&](auto dtag) {
            constexpr int HD = decltype(dtag)::value;
            dim3 grid((Tq + kRows - 1) / kRows, BH);
            flash_forward_kernel<HD, T>
                <<<grid, kRows>>>(static_cast<const T*>(q.raw_data()), static_cast<const T*>(k.raw_data()),
                                  static_cast<const T*>(v.raw_data()), static_cast<T*>(out.raw_data()),
                                  static_cast<float*>(lse.raw_data()), Tq, Tk, scale, causal);
        });
    });
    AC_CUDA_LAUNCH_CHECK("flash_attention_forward");
}

void flash_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                              const Tensor& lse, const Tensor& g, bool causal, const Tensor& dq,
                              const Tensor& dk, const Tensor& dv) {
    const int64_t BH = q.size(0) * q.size(1), Tq = q.size(2), Tk = k.size(2), D = q.size(3);
    if (BH == 0 || flash_backward_mma(q, k, v, out, lse, g, causal, dq, dk, dv)) return;
    AC_CHECK(q.is_contiguous() && k.is_contiguous() && v.is_contiguous() && out.is_contiguous() &&
                 g.is_contiguous() && dq.is_contiguous() && dk.is_contiguous() && dv.is_contiguous(),
             "flash_attention_backward: the f32 kernels take contiguous tensors, got ", q.desc(), ", ",
             g.desc());
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
    Tensor delta = empty({BH * Tq}, DType::F32, Device::CUDA);
    dispatch_gpu_float(q.dtype(), "flash_attention_backward", [&](auto tag) {
        using T = typename decltype(tag)::type;
        dispatch_head_dim(D, [&](auto dtag) {
            constexpr int HD = decltype(dtag)::value;
            const T* pq = static_cast<const T*>(q.raw_data());
            const T* pk = static_cast<const T*>(k.raw_data());
            const T* pv = static_cast<const T*>(v.raw_data());
            const T* pg = static_cast<const T*>(g.raw_data());
            const float* pl = static_cast<const float*>(lse.raw_data());
            float* pd = static_cast<float*>(delta.raw_data());
            if (BH * Tq > 0) {
                flash_delta_kernel<HD, T>
                    <<<(BH * Tq + 255) / 256, 256>>>(static_cast<const T*>(out.raw_data()), pg, pd, BH * Tq);
                AC_CUDA_LAUNCH_CHECK("flash_attention_backward");
            }
            if (Tk > 0) {
                flash_backward_kv_kernel<HD, T><<<dim3((Tk + kRows - 1) / kRows, BH), kRows>>>(
                    pq, pk, pv, pg, pl, pd, static_cast<T*>(dk.raw_data()), static_cast<T*>(dv.raw_data()),
                    Tq, Tk, scale, causal);
                AC_CUDA_LAUNCH_CHECK("flash_attention_backward");
            }
            if (Tq > 0) {
                flash_backward_q_kernel<HD, T><<<dim3((Tq + kRows - 1) / kRows, BH), kRows>>>(
                    pq, pk, pv, pg, pl, pd, static_cast<T*>(dq.raw_data()), Tq, Tk, scale, causal);
                AC_CUDA_LAUNCH_CHECK("flash_attention_backward");
            }
        });
    });
}

void attention_cls_probs(const Tensor& q, const Tensor& k, const Tensor& probs) {
    const int64_t H = q.size(1), BH = q.size(0) * H, Tk = k.size(2), D = q.size(3);
    AC_CHECK(q.strides()[3] == 1 && k.strides()[3] == 1, "attention_cls_probs: q ", q.desc(), " and k ",
             k.desc(), " need a contiguous last dim");
    const ViewStrides qs{q.strides()[0], q.strides()[1], q.strides()[2]},
        ks{k.strides()[0], k.strides()[1], k.strides()[2]};
    if (BH * Tk == 0) return;
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
    const size_t shared_bytes = static_cast<size_t>(Tk) * sizeof(float);
    AC_CHECK(shared_bytes <= 48 * 1024, "attention_cls_probs: ", Tk, " keys do not fit in shared memory");
    dispatch_gpu_float(q.dtype(), "attention_cls_probs", [&](auto tag) {
        using T = typename decltype(tag)::type;
        cls_probs_kernel<T><<<BH, 256, shared_bytes>>>(static_cast<const T*>(q.raw_data()), qs,
                                                       static_cast<const T*>(k.raw_data()), ks,
                                                       static_cast<T*>(probs.raw_data()), H, Tk, D, scale);
    });
    AC_CUDA_LAUNCH_CHECK("attention_cls_probs");
}

}  // namespace aclip::cuda
