// layer_norm.cuh: the kernels of layer_norm.cu (see there), in a header so that
// tests/cuda/test_layer_norm_emulated.cpp can also compile them for the CPU and run them on emulated
// threads (warp_emulation.h): the 16-byte packs, the warp reductions and the column sums are checked
// against the CPU op without a GPU.
#pragma once
#include <cstdint>

#include "engine/cuda/column_sums.cuh"
#include "engine/cuda/device_math.cuh"

namespace aclip::cuda::layer_norm_kernels {

constexpr int kThreads = 128;  // 4 warps: finer steps of occupancy for kernels holding rows in registers
constexpr int kRowsPerBlock = kThreads / 32;

// Rows are read in packs of V elements (16-byte accesses when the row length and pointers allow, else
// V = 1), a warp holding P packs a lane (RowSlice, device_math.cuh): the launch picks the smallest P of
// kPackCounts that holds the row (P = 3 for 768 bf16 values, 6 for 768 f32), so the row is read from
// memory once, all its loads issued together, and kept in registers for the kernel's later passes. A row
// longer than 8 packs a lane is taken in slices, each pass reading it again.

// Rows a warp takes at once: rows held whole (D <= 32 V P) in slices of at most 2 KB go two at a time, all
// their loads issued together (forward: x; backward: x and g); other rows one at a time. A warp's loads in
// flight are what the kernels' bandwidth follows: in the forward, 768 bf16 values a row (1.5 KB, 56
// registers, 36 warps an SM) reached 62% of it, 768 f32 (3 KB, 28 warps) 82%; in the backward, bf16 rows
// (128 registers, 16 warps, 48 KB an SM) 56%, an f32 x with a bf16 g and the f32 gradient added into
// (90 KB) 79%.
template <class T, int V, int P>
constexpr int held_rows_per_warp() {
    return 32 * V * P * static_cast<int>(sizeof(T)) <= 2048 ? 2 : 1;
}

// Normalises one row from xs, which holds its first slice (the whole row when D fits one); the rest of a
// longer row is read again, slice by slice, each pass.
template <class T, class Y, int V, int P>
__device__ __forceinline__ void normalize_row(RowSlice<T, V, P>& xs, const T* xr, const T* w, const T* b,
                                              Y* yr, float* mean_out, float* rstd_out, int64_t D, float eps) {
    using Slice = RowSlice<T, V, P>;
    const bool held = D <= Slice::kElements;  // the whole row stays in registers
    float s = 0.0f;
    for (int64_t c = 0; c < D; c += Slice::kElements) {
        if (c > 0) xs.load(xr, c, D);
#pragma unroll
        for (int p = 0; p < P; ++p)
#pragma unroll
            for (int k = 0; k < V; ++k) s += xs.value(p, k);  // zeros past the end add nothing
    }
    const float m = warp_sum(s) / static_cast<float>(D);
    float ss = 0.0f;
    for (int64_t c = 0; c < D; c += Slice::kElements) {
        if (!held) xs.load(xr, c, D);
#pragma unroll
        for (int p = 0; p < P; ++p) {
            if (Slice::first(c, p) >= D) continue;
#pragma unroll
            for (int k = 0; k < V; ++k) {
                const float d = xs.value(p, k) - m;
                ss += d * d;
            }
        }
    }
    const float rs = rsqrtf(warp_sum(ss) / static_cast<float>(D) + eps);
    for (int64_t c = 0; c < D; c += Slice::kElements) {
        if (!held) xs.load(xr, c, D);
#pragma unroll
        for (int p = 0; p < P; ++p) {
            const int64_t i = Slice::first(c, p);
            if (i >= D) continue;
            Pack<T, V> wp, bp;
            Pack<Y, V> yp;
            if (w) wp = load_pack<T, V>(w + i);
            if (b) bp = load_pack<T, V>(b + i);
#pragma unroll
            for (int k = 0; k < V; ++k) {
                float v = (xs.value(p, k) - m) * rs;
                if (w) v *= ld(wp.v[k]);
                if (b) v += ld(bp.v[k]);
                yp.v[k] = st<Y>(ld(st<T>(v)));
            }
            store_pack<Y, V>(yr + i, yp);
        }
    }
    if (threadIdx.x % 32 == 0) {
        *mean_out = m;
        *rstd_out = rs;
    }
}

// x, w, b are T; y is Y: T, or bf16 for an f32 x (each value rounded to T first, as the CPU op and a cast of
// a T output do). A warp takes kRows consecutive rows (kRows > 1 only for rows held whole): launch
// (R + kRows kRowsPerBlock - 1) / (kRows kRowsPerBlock) blocks of kThreads.
template <class T, class Y, int V, int P, int kRows = 1>
__global__ void layer_norm_forward_kernel(const T* x, const T* w, const T* b, Y* y, float* mean_out,
                                          float* rstd_out, int64_t R, int64_t D, float eps) {
    const int64_t first = warp_row() * kRows;
    RowSlice<T, V, P> xs[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r)
        if (first + r < R) xs[r].load(x + (first + r) * D, 0, D);  // every row's first loads, together
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
        const int64_t row = first + r;
        if (row < R)
            normalize_row<T, Y, V, P>(xs[r], x + row * D, w, b, y + row * D, mean_out + row, rstd_out + row,
                                      D, eps);
    }
}

// dxhat = g * w; dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), for one row whose first
// slices xs and gs hold (the whole row when D fits one); the rest of a longer row is read slice by slice,
// and again in the second pass. g is in y's dtype G. With kAccumulate, dr holds a gradient already (a
// residual stream's) whose first slice `old` holds, and each value is added to it, rounded as adding dx
// afterwards would: one pass instead of writing dx and then a separate sum. low, if given, receives dx's
// final values rounded to bf16 in the same pass (a residual stream's gradient, which the next linear layer's
// backward multiplies in bf16). dr may be null (no input gradient; not with kAccumulate). With kParams
// (held rows only), the row's terms of the weight and bias gradients, g xhat and g, are added into sums for
// the columns this lane holds.
template <class T, class G, int V, int P, bool kParams, bool kAccumulate>
__device__ __forceinline__ void backward_row(RowSlice<T, V, P>& xs, RowSlice<G, V, P>& gs,
                                             RowSlice<T, V, P>& old, const G* gr, const T* xr, const T* w,
                                             float m, float rs, T* dr, bf16* low, int64_t D,
                                             float (&sums)[2][kParams ? P : 1][V]) {
    using Slice = RowSlice<T, V, P>;
    const bool held = D <= Slice::kElements;
    // xhat and dxhat of element k of pack p, whose weights are wp.
    auto xhat = [&](int p, int k) { return (xs.value(p, k) - m) * rs; };
    auto dxhat = [&](int p, int k, const Pack<T, V>& wp) {
        return gs.value(p, k) * (w ? ld(wp.v[k]) : 1.0f);
    };
    float sum_dxhat = 0.0f, sum_dxhat_xhat = 0.0f;
    for (int64_t c = 0; c < D; c += Slice::kElements) {
        if (c > 0) {
            xs.load(xr, c, D);
            gs.load(gr, c, D);
        }
#pragma unroll
        for (int p = 0; p < P; ++p) {
            const int64_t i = Slice::first(c, p);
            if (i >= D) continue;
            Pack<T, V> wp;
            if (w) wp = load_pack<T, V>(w + i);
#pragma unroll
            for (int k = 0; k < V; ++k) {
                const float d = dxhat(p, k, wp);
                sum_dxhat += d;
                sum_dxhat_xhat += d * xhat(p, k);
                if constexpr (kParams) {
                    sums[0][p][k] += gs.value(p, k) * xhat(p, k);
                    sums[1][p][k] += gs.value(p, k);
                }
            }
        }
    }
    if (!dr) return;
    const float a = warp_sum(sum_dxhat) / static_cast<float>(D);
    const float cx = warp_sum(sum_dxhat_xhat) / static_cast<float>(D);
    for (int64_t c = 0; c < D; c += Slice::kElements) {
        if (!held) {
            xs.load(xr, c, D);
            gs.load(gr, c, D);
        }
        if (kAccumulate && c > 0) old.load(dr, c, D);
#pragma unroll
        for (int p = 0; p < P; ++p) {
            const int64_t i = Slice::first(c, p);
            if (i >= D) continue;
            Pack<T, V> wp, out;
            if (w) wp = load_pack<T, V>(w + i);
#pragma unroll
            for (int k = 0; k < V; ++k) {
                out.v[k] = st<T>(rs * (dxhat(p, k, wp) - a - xhat(p, k) * cx));
                if constexpr (kAccumulate) out.v[k] = st<T>(old.value(p, k) + ld(out.v[k]));
            }
            store_pack<T, V>(dr + i, out);
            if (low) {
                Pack<bf16, V> rounded;
#pragma unroll
                for (int k = 0; k < V; ++k) rounded.v[k] = st<bf16>(ld(out.v[k]));
                store_pack<bf16, V>(low + i, rounded);
            }
        }
    }
}

// The LayerNorm backward (backward_row) of every row: warps take rows grid-stride, kRows of their rows at a
// time (kRows > 1 only for rows held whole), every taken row's loads of x, g and (kAccumulate) the gradient
// dx holds issued first: one wait for memory a held row. dx may be null (not with kAccumulate), dx_low
// too. With kParams (rows held whole: D <= 32 V P), each warp also adds up its rows' terms of the weight and
// bias gradients, so x and g are read once for all three gradients; a block's sums, added warp after warp,
// go to its chunk of partial (2, gridDim.x, D) for add_chunks (column_sums.cuh). A warp's rows are added
// in the same order whatever kRows, so the same grid gives the same bits with any kRows, and on every run.
template <class T, class G, int V, int P, bool kParams, bool kAccumulate, int kRows = 1>
__global__ void __launch_bounds__(kThreads)
    layer_norm_backward_kernel(const G* g, const T* x, const T* w, const float* mean, const float* rstd,
                               T* dx, bf16* dx_low, float* partial, int64_t R, int64_t D) {
    using Slice = RowSlice<T, V, P>;
    float sums[2][kParams ? P : 1][V] = {};  // this lane's columns: g xhat, g
    const int64_t stride = static_cast<int64_t>(gridDim.x) * kRowsPerBlock;
    for (int64_t first = warp_row(); first < R; first += kRows * stride) {
        Slice xs[kRows], old[kAccumulate ? kRows : 1];
        RowSlice<G, V, P> gs[kRows];
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
            const int64_t row = first + r * stride;
            if (row < R) {
                xs[r].load(x + row * D, 0, D);
                gs[r].load(g + row * D, 0, D);
                if constexpr (kAccumulate) old[r].load(dx + row * D, 0, D);
            }
        }
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
            const int64_t row = first + r * stride;
            if (row < R)
                backward_row<T, G, V, P, kParams, kAccumulate>(
                    xs[r], gs[r], old[kAccumulate ? r : 0], g + row * D, x + row * D, w, mean[row], rstd[row],
                    dx ? dx + row * D : nullptr, dx_low ? dx_low + row * D : nullptr, D, sums);
        }
    }
    if constexpr (kParams) {
        __shared__ float block_sums[2][Slice::kElements];
        const int warp = threadIdx.x / 32;
        for (int turn = 0; turn < kRowsPerBlock; ++turn) {
            if (warp == turn)
#pragma unroll
                for (int p = 0; p < P; ++p)
#pragma unroll
                    for (int k = 0; k < V; ++k) {
                        const int64_t column = Slice::first(0, p) + k;
                        if (column >= D) continue;
                        for (int s = 0; s < 2; ++s)
                            block_sums[s][column] = (turn ? block_sums[s][column] : 0.0f) + sums[s][p][k];
                    }
            __syncthreads();
        }
        for (int64_t i = threadIdx.x; i < D; i += kThreads)
            for (int s = 0; s < 2; ++s) partial[(s * gridDim.x + blockIdx.x) * D + i] = block_sums[s][i];
    }
}

// The weight and bias gradients, sums over rows of g * xhat and g (column_sums.cuh: into dw and db with one
// row chunk, else into partial (2, chunks, D)).
template <class T, class G, int V>
__global__ void __launch_bounds__(columns::kThreads)
    layer_norm_param_kernel(const G* g, const T* x, const float* mean, const float* rstd, float* partial,
                            T* dw, T* db, int64_t R, int64_t D, int64_t chunks) {
    T* const outs[2] = {dw, db};
    columns::chunk_sums<2, V>(
        D, R, chunks,
        [&](int64_t p, int64_t r0, int64_t r_end, float(&acc)[2][V]) {
#pragma unroll 2
            for (int64_t r = r0; r < r_end; r += columns::kWarps) {
                const Pack<G, V> gp = load_pack<G, V>(g + r * D + p);
                const Pack<T, V> xp = load_pack<T, V>(x + r * D + p);
                const float m = mean[r], rs = rstd[r];
#pragma unroll
                for (int v = 0; v < V; ++v) {
                    const float gv = ld(gp.v[v]);
                    acc[0][v] += gv * (ld(xp.v[v]) - m) * rs;
                    acc[1][v] += gv;
                }
            }
        },
        outs, partial);
}

}  // namespace aclip::cuda::layer_norm_kernels
