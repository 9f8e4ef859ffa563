// attention.cuh: the f32 flash attention kernels of attention.cu and the kernel of the CLS row of the
// attention probabilities, in a header so that tests/cuda/test_attention_emulated.cpp can also compile them
// for the CPU and run them on emulated threads (warp_emulation.h). See attention.cu for what they do.
#pragma once
#include <cmath>
#include <cstdint>

#include "engine/cuda/device_math.cuh"

namespace aclip::cuda::attention_kernels {

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

// probs[b, h, j] = softmax_j(scale * q[b, h, 0] . k[b, h, j]); one block per (b, h), the Tk <= kMaxClsKeys
// scores in shared memory. q and k are (B, H, T, D) views with a contiguous last dim: element (b, h, t, d) at
// b * s[0] + h * s[1] + t * s[2] + d, so the q and k of a packed projection are read in place. The CLS
// query sits in shared memory. A key row is read by a group of L lanes (L a power of two, cls_group_lanes),
// lane l of the group taking the V-element packs at d = (l + L c) V (16 bytes where the row and strides
// allow), so a 64-wide bf16 row is one 128-byte read by 8 lanes and a warp reads 4 rows at once, two rows
// a group before it adds (two loads in flight a lane); the group's lanes then add their sums by shuffles.
// (The first version gave each thread a whole row: 32 rows 4.6 KB apart for each load of a warp, 0.18 ms
// a call at batch 256 in run 5, about a tenth of the bandwidth its 77 MB of keys need.)
constexpr int64_t kMaxClsKeys = 4096;  // 16 KiB of scores: a 1024 px image at patch 16
constexpr int64_t kMaxClsHeadDim = 256;
struct ViewStrides {
    int64_t batch, head, row;
};

// Lanes a key row takes: the fewest (a power of two, at most 32) that read it in one pack each.
inline int cls_group_lanes(int64_t D, int V) {
    int lanes = 1;
    while (lanes < 32 && static_cast<int64_t>(lanes) * V < D) lanes *= 2;
    return lanes;
}

template <class T, int V>
__global__ void cls_probs_kernel(const T* q, ViewStrides qs, const T* k, ViewStrides ks, T* probs, int64_t H,
                                 int64_t Tk, int64_t D, int L, float scale) {
    constexpr int kAtOnce = 2;  // rows a group reads before it adds them
    __shared__ float scores[kMaxClsKeys];
    __shared__ float query[kMaxClsHeadDim];
    __shared__ float shared[32];
    const int64_t bh = blockIdx.x, b = bh / H, h = bh % H;
    const T* q0 = q + b * qs.batch + h * qs.head;
    const T* kb = k + b * ks.batch + h * ks.head;
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) query[d] = ld(q0[d]);
    __syncthreads();
    const int lane = threadIdx.x % 32, sub = lane % L, groups = 32 / L;
    const int64_t step =
        static_cast<int64_t>(blockDim.x / 32) * groups * kAtOnce;  // rows a block reads at once
    float m = -INFINITY;
    // The warp's loop runs alike on all lanes (the shuffles need them all); a group's rows are j0 + r groups.
    for (int64_t w0 = static_cast<int64_t>(threadIdx.x / 32) * groups * kAtOnce; w0 < Tk; w0 += step) {
        const int64_t j0 = w0 + lane / L;
        float s[kAtOnce] = {};
        for (int64_t d = static_cast<int64_t>(sub) * V; d < D; d += static_cast<int64_t>(L) * V) {
            Pack<T, V> p[kAtOnce];
#pragma unroll
            for (int r = 0; r < kAtOnce; ++r) {
                const int64_t j = j0 + r * groups;
                p[r] = j < Tk ? load_pack<T, V>(kb + j * ks.row + d) : Pack<T, V>{};
            }
#pragma unroll
            for (int r = 0; r < kAtOnce; ++r)
#pragma unroll
                for (int e = 0; e < V; ++e) s[r] += query[d + e] * ld(p[r].v[e]);
        }
#pragma unroll
        for (int r = 0; r < kAtOnce; ++r) {
            for (int o = L / 2; o > 0; o >>= 1) s[r] += __shfl_xor_sync(0xffffffffu, s[r], o);
            const int64_t j = j0 + r * groups;
            if (j >= Tk) continue;
            if (sub == 0) scores[j] = s[r] * scale;
            m = fmaxf(m, s[r] * scale);
        }
    }
    m = block_max(m, shared);  // also the barrier after the scores' writes
    float l = 0.0f;
    for (int64_t j = threadIdx.x; j < Tk; j += blockDim.x) l += expf(scores[j] - m);
    l = block_sum(l, shared);
    for (int64_t j = threadIdx.x; j < Tk; j += blockDim.x)
        probs[bh * Tk + j] = st<T>(expf(scores[j] - m) / l);
}

}  // namespace aclip::cuda::attention_kernels
