// attention_mma.cuh: the kernels of attention_mma.cu (see there), in a header so that
// tests/cuda/test_mma_emulated.cpp can also compile them for the CPU, where mma.cuh's primitives run on an
// emulated warp (warp_emulation.h): their indexing, masking and online softmax are tested without a GPU.
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "engine/cuda/async_copy.cuh"
#include "engine/cuda/device_math.cuh"  // warp_sum
#include "engine/cuda/mma.cuh"

namespace aclip::cuda::flash_mma {

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kTileRows = 16 * kWarps;    // rows a block owns, and rows per streamed tile
constexpr int kTileCols = kTileRows / 8;  // 8-column C tiles across a streamed tile
constexpr float kLog2e = 1.4426950408889634f, kLn2 = 0.6931471805599453f;

// 2^x by the hardware's approximation with subnormal results flushed to 0 (ex2.approx.ftz): one
// instruction, where exp2f (ex2.approx without ftz) spends three more on each of a tile's 32 exponentials to
// keep subnormals. A probability below 2^-126 adds nothing to a row's f32 sum, and bf16 would round it to
// a subnormal that no output can show. The emulated warp flushes as the GPU does.
__device__ __forceinline__ float exp2_flushed(float x) {
#if defined(__CUDA_ARCH__)
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
#else
    const float y = std::exp2(x);
    return std::fpclassify(y) == FP_SUBNORMAL ? 0.0f : y;
#endif
}

// Shared tiles are (kTileRows, D) bf16 with rows padded by 8 elements: 16-byte aligned rows, and the
// fragment reads of a warp (8 rows x 4 lanes) fall in 32 different banks.
template <int D>
constexpr int kStride = D + 8;

// One (B, H, T, D) bf16 operand in memory: element (b, h, t, d) at data[b * batch + h * head + t * row + d].
// A contiguous tensor is {H T D, T D, D}; the q, k and v of a packed (B, T, 3, H, D) projection are
// {3 T H D, D, 3 H D}, each from its own first element, so the kernels read them in place and write the
// gradients into one packed buffer. Strides are multiples of 8 elements (16-byte rows).
template <class P>
struct Heads {
    P data;
    int64_t batch, head, row;
    // The first row of (batch, head) bh, H heads per batch.
    __device__ __forceinline__ P rows_of(int64_t bh, int64_t H) const {
        return data + (bh / H) * batch + (bh % H) * head;
    }
};

// Two shared stages of two operands' tiles: [stage][operand], each (kTileRows, D) with padded rows.
template <int D>
using TileStages = uint16_t[2][2][kTileRows * kStride<D>];

// Queues the copies of rows row0 .. row0 + 63 of a (rows, D) bf16 matrix, rows `stride` elements apart,
// into a shared tile (async_copy.cuh); rows past `rows` are zeroed at once.
template <int D>
__device__ __forceinline__ void queue_tile(uint16_t* tile, const uint16_t* src, int64_t stride, int64_t row0,
                                           int64_t rows) {
    constexpr int kChunks = D / 8;  // 16-byte pieces per row
    for (int e = threadIdx.x; e < kTileRows * kChunks; e += kThreads) {
        const int r = e / kChunks, c = e % kChunks;
        uint16_t* dst = tile + r * kStride<D> + c * 8;
        if (row0 + r < rows)
            copy_async_16(dst, src + (row0 + r) * stride + c * 8);
        else
            *reinterpret_cast<uint4*>(dst) = make_uint4(0, 0, 0, 0);
    }
}

// Rows row0 .. row0 + 15 of a (rows, D) bf16 matrix in global memory, rows `stride` elements apart, as the
// A fragments of its D / 16 column blocks; zeros past `rows`.
template <int D>
__device__ __forceinline__ void load_a_rows(FragA (&a)[D / 16], const uint16_t* src, int64_t stride,
                                            int64_t row0, int64_t rows) {
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const bool lo = row0 + g < rows, hi = row0 + g + 8 < rows;
    const uint16_t* p = src + (row0 + g) * stride + 2 * t;
    const uint16_t* p8 = p + 8 * stride;  // row g + 8
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
        a[kk].x[0] = lo ? load_pair(p + kk * 16) : 0u;
        a[kk].x[1] = hi ? load_pair(p8 + kk * 16) : 0u;
        a[kk].x[2] = lo ? load_pair(p + kk * 16 + 8) : 0u;
        a[kk].x[3] = hi ? load_pair(p8 + kk * 16 + 8) : 0u;
    }
}

// The B fragments B[k][n] = tile[n0 + n][k0 + k] and tile[n0 + n][k0 + 16 + k] (k < 16, n < 8): the tile's
// rows are the product's columns (K in Q K^T); one ldmatrix for two fragments.
template <int D>
__device__ __forceinline__ void b_pair_from_rows(FragB& first, FragB& second, const uint16_t* tile, int n0,
                                                 int k0) {
    const int lane = threadIdx.x % 32, m = lane / 8, r = lane % 8;
    uint32_t x[4];
    ldmatrix_x4<false>(x, tile + (n0 + r) * kStride<D> + k0 + m * 8);
    first = FragB{{x[0], x[1]}};
    second = FragB{{x[2], x[3]}};
}

// The B fragments B[k][n] = tile[k0 + k][n0 + n] for n in 0..7 (left) and 8..15 (right): the tile's rows
// are the summed dimension (V in P V).
template <int D>
__device__ __forceinline__ void b_from_columns(FragB& left, FragB& right, const uint16_t* tile, int k0,
                                               int n0) {
    const int lane = threadIdx.x % 32, m = lane / 8, r = lane % 8;
    uint32_t x[4];
    ldmatrix_x4<true>(x, tile + (k0 + (m & 1) * 8 + r) * kStride<D> + n0 + (m >> 1) * 8);
    left = FragB{{x[0], x[1]}};
    right = FragB{{x[2], x[3]}};
}

// The A fragment of rows m0 .. m0 + 15 and columns k0 .. k0 + 15 of A = T^T, from a shared tile T (rows of
// W elements, padded) whose rows are A's columns: the summed dimension (keys, in dQ = dS K from dS^T).
template <int W>
__device__ __forceinline__ FragA a_from_columns(const uint16_t* tile, int k0, int m0) {
    const int lane = threadIdx.x % 32, m = lane / 8, r = lane % 8;
    FragA a;
    ldmatrix_x4<true>(a.x, tile + (k0 + (m >> 1) * 8 + r) * kStride<W> + m0 + (m & 1) * 8);
    return a;
}

// acc[n] += A (16, 16) times rows k0 .. k0 + 15 of the tile (64, D), the tile's rows being the summed
// dimension.
template <int D>
__device__ __forceinline__ void accumulate_times_rows(FragC (&acc)[D / 8], const FragA& a,
                                                      const uint16_t* tile, int k0) {
#pragma unroll
    for (int dn = 0; dn < D / 16; ++dn) {
        FragB left, right;
        b_from_columns<D>(left, right, tile, k0, dn * 16);
        mma_bf16(acc[2 * dn], a, left);
        mma_bf16(acc[2 * dn + 1], a, right);
    }
}

// acc[n] += A (16, 64) times the tile (64, D), A given as kTileCols C tiles (probabilities or their
// gradients), the tile's rows being the summed dimension. Only the first `rows` rows of the tile are summed
// (in groups of 16): A is 0 in the columns past them (keys or queries past the end, or masked).
template <int D>
__device__ __forceinline__ void accumulate_times_tile(FragC (&acc)[D / 8], const FragC (&a)[kTileCols],
                                                      const uint16_t* tile, int rows) {
#pragma unroll
    for (int kk = 0; kk < kTileCols / 2 && kk * 16 < rows; ++kk)
        accumulate_times_rows<D>(acc, pack_a(a[2 * kk], a[2 * kk + 1]), tile, kk * 16);
}

// s[n] = A (16, D) times the tile's rows transposed: (16, 64) products with the 64 rows of the tile. Only
// the first `rows` rows are multiplied (in groups of 8); the products with the rest are left 0.
template <int D>
__device__ __forceinline__ void times_tile_rows(FragC (&s)[kTileCols], const FragA (&a)[D / 16],
                                                const uint16_t* tile, int rows) {
    static_assert(D % 32 == 0, "fragments are loaded two column blocks at a time");
#pragma unroll
    for (int n = 0; n < kTileCols; ++n) {
        s[n] = FragC{};
        if (n * 8 >= rows) continue;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk += 2) {
            FragB first, second;
            b_pair_from_rows<D>(first, second, tile, n * 8, kk * 16);
            mma_bf16(s[n], a[kk], first);
            mma_bf16(s[n], a[kk + 1], second);
        }
    }
}

// The keys a block of 64 queries streams: all of them, or (causal) those up to its last query.
__device__ __forceinline__ int64_t keys_seen(int64_t Tk, bool causal) {
    return causal ? min(Tk, static_cast<int64_t>(blockIdx.x + 1) * kTileRows) : Tk;
}

// Rows of a streamed tile from row j0 that can reach this warp's 16 rows from row0, of `rows` in all:
// those before the end and, with `before` (causal, the tile holding keys), those up to the warp's last
// query; 0 when the warp's own rows are all past `own_rows`. The products with the rest are 0 (their
// probabilities are), so they are skipped: with 197 tokens, the last tile of 64 holds 5 and the last
// block's last three warps none, and a third of the products were of padding.
__device__ __forceinline__ int rows_reaching(int64_t j0, int64_t rows, int64_t row0, int64_t own_rows,
                                             bool before) {
    if (row0 >= own_rows) return 0;
    const int64_t end = before && row0 + 16 < rows ? row0 + 16 : rows;
    const int64_t reach = end - j0;
    return reach <= 0 ? 0 : reach >= kTileRows ? kTileRows : static_cast<int>(reach);
}

// The tiles a block streams (keys and values, or queries and dO) are double-buffered: while the warps
// multiply the tiles of one stage, the next rows are copied into the other. A loop over tiles:
//   queue_tiles(stages[0], ..., first row);
//   for (j0 = first, stage = 0; j0 < end; j0 += kTileRows, stage ^= 1) {
//       next_stage(j0 + kTileRows < end, [&] { queue_tiles(stages[stage ^ 1], ..., j0 + kTileRows); });
//       ... multiply stages[stage] ...
//   }
// Rows j0 .. j0 + 63 of both operands into `stage`, as one group of copies.
template <int D>
__device__ __forceinline__ void queue_tiles(uint16_t (&stage)[2][kTileRows * kStride<D>], const uint16_t* a,
                                            int64_t stride_a, const uint16_t* b, int64_t stride_b, int64_t j0,
                                            int64_t rows) {
    queue_tile<D>(stage[0], a, stride_a, j0, rows);
    queue_tile<D>(stage[1], b, stride_b, j0, rows);
    commit_copies();
}

// At the top of an iteration: once every warp is done with the other stage (multiplied last iteration),
// queue() refills it if `more`; then waits until this stage's copies have landed and every thread sees
// them (the other stage's may still be in flight).
template <class Queue>
__device__ __forceinline__ void next_stage(bool more, Queue&& queue) {
    __syncthreads();
    if (more) {
        queue();
        wait_copies<1>();  // all but the group just queued
    } else {
        wait_copies<0>();
    }
    __syncthreads();
}

// Rows row and row + 8 of this lane (g = lane / 4) of a (rows, D) result from C tiles, times `scale`, rows
// `stride` elements apart.
template <int D>
__device__ __forceinline__ void store_rows(uint16_t* dst, int64_t stride, const FragC (&acc)[D / 8],
                                           int64_t row0, int64_t rows, const float (&scale)[2]) {
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const int64_t row = row0 + g + r * 8;
        if (row >= rows) continue;
        uint16_t* p = dst + row * stride + 2 * t;
#pragma unroll
        for (int dn = 0; dn < D / 8; ++dn)
            *reinterpret_cast<uint32_t*>(p + dn * 8) =
                pack_bf16x2(acc[dn].x[2 * r] * scale[r], acc[dn].x[2 * r + 1] * scale[r]);
    }
}

// Launch bounds hold the register count that gave 4 blocks an SM here before the padding skip
// (rows_reaching), which left to itself took 144 registers (ptxas -v).
template <int D>
__global__ void __launch_bounds__(kThreads, 4)
    forward_kernel(Heads<const uint16_t*> q, Heads<const uint16_t*> k, Heads<const uint16_t*> v,
                   Heads<uint16_t*> out, float* lse, int64_t H, int64_t Tq, int64_t Tk, float scale_log2,
                   bool causal) {
    __shared__ __align__(16) TileStages<D> stages;  // [stage][keys, values]
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const int64_t bh = blockIdx.y, row0 = static_cast<int64_t>(blockIdx.x) * kTileRows + warp * 16;
    const uint16_t *kb = k.rows_of(bh, H), *vb = v.rows_of(bh, H);
    const int64_t end = keys_seen(Tk, causal);
    queue_tiles<D>(stages[0], kb, k.row, vb, v.row, 0, Tk);
    FragA qa[D / 16];  // (16, D): this warp's queries
    load_a_rows<D>(qa, q.rows_of(bh, H), q.row, row0, Tq);
    FragC o[D / 8];                                      // (16, D) unnormalised output
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0, 0};  // rows g, g + 8: running max (log2 units), this
                                                         // lane's share of the running sum
    for (int64_t j0 = 0, stage = 0; j0 < end; j0 += kTileRows, stage ^= 1) {
        next_stage(j0 + kTileRows < end,
                   [&] { queue_tiles<D>(stages[stage ^ 1], kb, k.row, vb, v.row, j0 + kTileRows, Tk); });
        const uint16_t *ks = stages[stage][0], *vs = stages[stage][1];
        const int keys = rows_reaching(j0, Tk, row0, Tq, causal);
        if (keys == 0) continue;  // the online softmax is unchanged by a tile of masked keys
        FragC s[kTileCols];       // (16, 64) scores; probabilities past `keys` stay 0
        times_tile_rows<D>(s, qa, ks, keys);
        // Row r's keys from column limit[r] of the tile on are masked: past the end, or (causal) after its
        // query. Once a tile and in 32 bits: per score, the 64-bit key and query indices had cost more
        // instructions than the products.
        int limit[2];
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            int64_t end = Tk - j0;
            if (causal) end = min(end, row0 + g + r * 8 - j0 + 1);
            limit[r] = end <= 0 ? 0 : end >= kTileRows ? kTileRows : static_cast<int>(end);
        }
        // The max of the raw scores: scale_log2 > 0, so scaling it gives the max of the scaled scores, and
        // the scale rides on the exponent's multiply-add.
        float tile_max[2] = {-INFINITY, -INFINITY};
        auto mask_and_max = [&](auto masked) {  // a whole tile of keys (most of them) needs no mask
#pragma unroll
            for (int n = 0; n < kTileCols && n * 8 < keys; ++n)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    if constexpr (decltype(masked)::value)
                        if (n * 8 + 2 * t + (e & 1) >= limit[e >> 1]) s[n].x[e] = -INFINITY;
                    tile_max[e >> 1] = fmaxf(tile_max[e >> 1], s[n].x[e]);
                }
        };
        if (limit[0] < kTileRows || limit[1] < kTileRows)
            mask_and_max(std::true_type{});
        else
            mask_and_max(std::false_type{});
        float base[2], correction[2];
#pragma unroll
        for (int r = 0; r < 2; ++r) {  // the four lanes of a row agree on its max
            tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 1));
            tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 2));
            const float m_new = fmaxf(m[r], tile_max[r] * scale_log2);
            base[r] = m_new == -INFINITY ? 0.0f : m_new;  // no key seen yet: every term is 0 anyway
            correction[r] = exp2_flushed(m[r] - base[r]);
            m[r] = m_new;
            l[r] *= correction[r];
        }
#pragma unroll
        for (int n = 0; n < kTileCols && n * 8 < keys; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const float p = exp2_flushed(fmaf(s[n].x[e], scale_log2, -base[e >> 1]));
                s[n].x[e] = p;
                l[e >> 1] += p;
            }
#pragma unroll
        for (int dn = 0; dn < D / 8; ++dn)
#pragma unroll
            for (int e = 0; e < 4; ++e) o[dn].x[e] *= correction[e >> 1];
        accumulate_times_tile<D>(o, s, vs, keys);
    }
    float inv[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
        inv[r] = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;  // a NaN sum keeps its NaN output (0 * NaN)
        const int64_t query = row0 + g + r * 8;
        if (t == 0 && query < Tq)
            lse[bh * Tq + query] = l[r] > 0.0f ? (m[r] + log2f(l[r])) * kLn2 : -INFINITY;
    }
    store_rows<D>(out.rows_of(bh, H), out.row, o, row0, Tq, inv);
}

// lse (natural log) of a row as the base-2 offset of its probabilities; rows past the end and rows that
// saw no key get +inf, so their probabilities are 0.
__device__ __forceinline__ float lse_log2(const float* lse, int64_t i, int64_t rows) {
    const float value = i < rows ? lse[i] : -INFINITY;
    return value == -INFINITY ? INFINITY : value * kLog2e;
}

// Columns of dS^T, the scores' gradient with keys as rows: Tq rounded up to whole tiles, so that the dQ
// kernel copies whole 16-byte pieces of a tile of 64 queries.
constexpr int64_t score_columns(int64_t Tq) {
    return (Tq + kTileRows - 1) / kTileRows * kTileRows;
}

// One block per 64 keys: dV = P^T dO and dK = scale dS^T Q, streaming query tiles. The products are
// computed transposed, (16 keys, 64 queries) per warp, so the keys' rows stay in registers. dS^T is also
// written, rounded to bf16 as the products take it, into ds_t ((B H, Tk, score_columns(Tq)), rows past Tk
// not written) for the dQ kernel; with causal masking, the tiles above the diagonal are not written either.
template <int D>
__global__ void __launch_bounds__(kThreads)
    backward_kv_kernel(Heads<const uint16_t*> q, Heads<const uint16_t*> k, Heads<const uint16_t*> v,
                       Heads<const uint16_t*> go, const float* lse, const float* delta, Heads<uint16_t*> dk,
                       Heads<uint16_t*> dv, uint16_t* ds_t, int64_t H, int64_t Tq, int64_t Tk,
                       float scale_log2, float scale, bool causal) {
    __shared__ __align__(16) TileStages<D> stages;  // [stage][queries, dO]
    __shared__ float row_terms[2][2][kTileRows];    // [stage][lse (log2), delta]
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const int64_t bh = blockIdx.y, key0 = static_cast<int64_t>(blockIdx.x) * kTileRows + warp * 16;
    const uint16_t *qb = q.rows_of(bh, H), *gb = go.rows_of(bh, H);
    lse += bh * Tq;
    delta += bh * Tq;
    const int64_t ds_row = score_columns(Tq);
    ds_t += bh * Tk * ds_row;
    const float one[2] = {1.0f, 1.0f}, scaled[2] = {scale, scale};
    FragA ka[D / 16], va[D / 16];  // (16, D): this warp's keys and values
    load_a_rows<D>(ka, k.rows_of(bh, H), k.row, key0, Tk);
    load_a_rows<D>(va, v.rows_of(bh, H), v.row, key0, Tk);
    FragC dk_acc[D / 8], dv_acc[D / 8];
    // Causal: queries before this block's first key see none of its keys.
    const int64_t first = causal ? static_cast<int64_t>(blockIdx.x) * kTileRows : 0;
    // Queues query tile i0 and writes its row terms into stage s.
    auto queue_queries = [&](int s, int64_t i0) {
        if (threadIdx.x < kTileRows) {
            row_terms[s][0][threadIdx.x] = lse_log2(lse, i0 + threadIdx.x, Tq);
            row_terms[s][1][threadIdx.x] = i0 + threadIdx.x < Tq ? delta[i0 + threadIdx.x] : 0.0f;
        }
        queue_tiles<D>(stages[s], qb, q.row, gb, go.row, i0, Tq);
    };
    if (first < Tq) queue_queries(0, first);
    for (int64_t i0 = first, stage = 0; i0 < Tq; i0 += kTileRows, stage ^= 1) {
        next_stage(i0 + kTileRows < Tq, [&] { queue_queries(static_cast<int>(stage ^ 1), i0 + kTileRows); });
        const uint16_t *qs = stages[stage][0], *gs = stages[stage][1];
        const float *ls = row_terms[stage][0], *ds = row_terms[stage][1];
        const int queries = rows_reaching(i0, Tq, key0, Tk, false);
        if (queries == 0) continue;
        FragC p[kTileCols], dp[kTileCols];  // (16 keys, 64 queries): P^T, then dS^T; (dO V^T)^T
        times_tile_rows<D>(p, ka, qs, queries);
        times_tile_rows<D>(dp, va, gs, queries);
        // (causal) Row r's key is seen by the queries from column first[r] of the tile on: once a tile and in
        // 32 bits (a score had compared 64-bit key and query indices), and skipped where no key is masked.
        int first[2] = {0, 0};
        if (causal)
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                const int64_t d = key0 + g + r * 8 - i0;
                first[r] = d <= 0 ? 0 : d >= kTileRows ? kTileRows : static_cast<int>(d);
            }
        auto probabilities_and_gradients = [&](auto masked) {
#pragma unroll
            for (int n = 0; n < kTileCols && n * 8 < queries; ++n)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int col = n * 8 + 2 * t + (e & 1);
                    float prob = exp2_flushed(p[n].x[e] * scale_log2 - ls[col]);
                    if constexpr (decltype(masked)::value)
                        if (col < first[e >> 1]) prob = 0.0f;
                    p[n].x[e] = prob;
                    dp[n].x[e] = prob * (dp[n].x[e] - ds[col]);
                }
        };
        if (first[0] > 0 || first[1] > 0)
            probabilities_and_gradients(std::true_type{});
        else
            probabilities_and_gradients(std::false_type{});
        store_rows<kTileRows>(ds_t + i0, ds_row, dp, key0, Tk, one);  // this warp's 16 rows of dS^T
        accumulate_times_tile<D>(dv_acc, p, gs, queries);
        accumulate_times_tile<D>(dk_acc, dp, qs, queries);
    }
    store_rows<D>(dv.rows_of(bh, H), dv.row, dv_acc, key0, Tk, one);
    store_rows<D>(dk.rows_of(bh, H), dk.row, dk_acc, key0, Tk, scaled);
}

// One block per 64 queries: dQ = scale dS K, streaming tiles of keys and of the dK/dV kernel's dS^T (its
// rows are keys: the tile's 64 rows by this block's 64 columns), so no score is computed twice. Rows past
// Tk are zeroed as they are copied; columns past Tq feed only rows of dQ that are not stored; with causal
// masking, only tiles up to the diagonal are read, the ones the dK/dV kernel wrote.
template <int D>
__global__ void __launch_bounds__(kThreads)
    backward_q_kernel(Heads<const uint16_t*> k, const uint16_t* ds_t, Heads<uint16_t*> dq, int64_t H,
                      int64_t Tq, int64_t Tk, float scale, bool causal) {
    __shared__ __align__(16) uint16_t keys[2][kTileRows * kStride<D>];
    __shared__ __align__(16) uint16_t grads[2][kTileRows * kStride<kTileRows>];  // (64 keys, 64 queries)
    const int warp = threadIdx.x / 32;
    const int64_t bh = blockIdx.y, row0 = static_cast<int64_t>(blockIdx.x) * kTileRows + warp * 16;
    const int64_t ds_row = score_columns(Tq);
    const uint16_t* kb = k.rows_of(bh, H);
    const uint16_t* gb = ds_t + bh * Tk * ds_row + static_cast<int64_t>(blockIdx.x) * kTileRows;
    const int64_t end = keys_seen(Tk, causal);
    auto queue = [&](int64_t s, int64_t j0) {
        queue_tile<D>(keys[s], kb, k.row, j0, Tk);
        queue_tile<kTileRows>(grads[s], gb, ds_row, j0, Tk);
        commit_copies();
    };
    queue(0, 0);
    FragC dq_acc[D / 8];
    for (int64_t j0 = 0, stage = 0; j0 < end; j0 += kTileRows, stage ^= 1) {
        next_stage(j0 + kTileRows < end, [&] { queue(stage ^ 1, j0 + kTileRows); });
        const uint16_t *ks = keys[stage], *gs = grads[stage];
        const int reach = rows_reaching(j0, Tk, row0, Tq, causal);
#pragma unroll
        for (int kk = 0; kk < kTileCols / 2 && kk * 16 < reach; ++kk)  // dS (16 queries, 16 keys) times K
            accumulate_times_rows<D>(dq_acc, a_from_columns<kTileRows>(gs, kk * 16, warp * 16), ks, kk * 16);
    }
    const float scaled[2] = {scale, scale};
    store_rows<D>(dq.rows_of(bh, H), dq.row, dq_acc, row0, Tq, scaled);
}

// delta[bh, i] = sum_d dO[bh, i, d] * O[bh, i, d], the row term of the softmax backward. A row is read by
// kDeltaLanes<D> lanes, one 16-byte pack of each operand a lane, so a warp's loads cover whole rows (a
// thread a row had each of its 32 loads touch 32 rows apart), then summed across them; launch
// delta_blocks(rows) blocks of kDeltaThreads.
template <int D>
constexpr int kDeltaLanes = D / 8;
constexpr int kDeltaThreads = 256;
template <int D>
constexpr int64_t delta_blocks(int64_t rows) {
    return (rows * kDeltaLanes<D> + kDeltaThreads - 1) / kDeltaThreads;
}
template <int D>
__global__ void delta_kernel(Heads<const uint16_t*> out, Heads<const uint16_t*> go, float* delta, int64_t H,
                             int64_t T, int64_t rows) {
    constexpr int L = kDeltaLanes<D>;
    const int64_t r = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / L;
    const int sub = threadIdx.x % L;
    float s = 0.0f;
    if (r < rows) {  // a lane past the end still joins its warp's shuffles
        const int64_t bh = r / T, i = r % T;
        const uint4 ow = *reinterpret_cast<const uint4*>(out.rows_of(bh, H) + i * out.row + sub * 8);
        const uint4 gw = *reinterpret_cast<const uint4*>(go.rows_of(bh, H) + i * go.row + sub * 8);
        const uint32_t o[4] = {ow.x, ow.y, ow.z, ow.w}, g[4] = {gw.x, gw.y, gw.z, gw.w};
#pragma unroll
        for (int k = 0; k < 4; ++k)
            for (int half = 0; half < 2; ++half) s += unpack_bf16(o[k], half) * unpack_bf16(g[k], half);
    }
    s = warp_sum<L>(s);
    if (sub == 0 && r < rows) delta[r] = s;
}

}  // namespace aclip::cuda::flash_mma
