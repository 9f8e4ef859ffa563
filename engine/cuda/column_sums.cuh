// column_sums.cuh: sums down the columns of a matrix, the reduction behind bias gradients (a (rows, N)
// gradient summed over its rows), LayerNorm's weight and bias gradients, and any sum over a middle dim.
// A block takes 32 V adjacent columns and one chunk of the rows: its 8 warps take every eighth row of the
// chunk and each lane V adjacent columns, so a warp reads 32 V contiguous elements a row (512 bytes with
// 16-byte packs). The warps' sums meet in shared memory and are added in warp order; the chunks' sums are
// added by a second pass (add_chunks, itself a column sum of the chunks) in a fixed order, so the same
// inputs give the same bits on every run.
// The host side, run_column_sums, is in device_util.cuh.
// In a header so that tests/cuda/test_column_sums_emulated.cpp can run it on emulated threads
// (warp_emulation.h) on a machine without a GPU.
#pragma once
#include <cstdint>

#include "engine/cuda/device_math.cuh"  // on the CPU, with warp_emulation.h

namespace aclip::cuda::columns {

constexpr int kWarps = 8;
constexpr int kThreads = 32 * kWarps;

// K sums for each of the columns 32 V blockIdx.x .. 32 V (blockIdx.x + 1) - 1 of n, over the rows of chunk
// blockIdx.y of `chunks` (rows c R / chunks .. (c + 1) R / chunks - 1). For a lane's first column p (a
// multiple of V, p < n, and p + V <= n), sum_rows(p, r0, r_end, acc) adds the terms of rows r0, r0 + kWarps,
// ... below r_end into acc[k][0 .. V). With one chunk, sum k of a column goes to out[k] (skipped where
// null); with several, to partial (K, chunks, n) f32, for add_chunks.
template <int K, int V, class T, class SumRows>
__device__ __forceinline__ void chunk_sums(int64_t n, int64_t R, int64_t chunks, SumRows sum_rows,
                                           T* const (&out)[K], float* partial) {
    __shared__ float warp_sums[K * V * kThreads];  // [k][v][warp][lane]: no bank conflicts either way
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int64_t first_column = static_cast<int64_t>(blockIdx.x) * 32 * V;
    const int64_t p = first_column + lane * V, c = blockIdx.y;
    float acc[K][V] = {};
    if (p < n) sum_rows(p, c * R / chunks + warp, (c + 1) * R / chunks, acc);
#pragma unroll
    for (int k = 0; k < K; ++k)
#pragma unroll
        for (int v = 0; v < V; ++v) warp_sums[((k * V + v) * kWarps + warp) * 32 + lane] = acc[k][v];
    __syncthreads();
    for (int o = threadIdx.x; o < K * V * 32; o += kThreads) {  // o = (k, v, lane)
        const int k = o / (V * 32), v = o / 32 % V, l = o % 32;
        const int64_t column = first_column + l * V + v;
        if (column >= n) continue;
        float s = 0.0f;
        for (int w = 0; w < kWarps; ++w) s += warp_sums[((k * V + v) * kWarps + w) * 32 + l];
        if (chunks > 1)
            partial[(k * chunks + c) * n + column] = s;
        else if (out[k])
            out[k][column] = st<T>(s);
    }
}

// The second pass: out[p] = the sum over c of partial[c n + p], the (chunks, n) matrix's column sums by
// chunk_sums with one chunk: a block's warps take its 32 columns' chunks, each every kWarps-th, kAhead loads
// in flight, and add their sums in warp order. (A thread a column adding its chunks one after another
// waited for memory at every chunk: 20-45 us for LayerNorm's 528 chunks of 768 columns, run 6.) Launched
// with add_chunks_blocks(n) blocks of kThreads threads.
template <class T>
__global__ void __launch_bounds__(kThreads)
    add_chunks(const float* partial, T* out, int64_t n, int64_t chunks) {
    constexpr int kAhead = 8;
    T* const outs[1] = {out};
    chunk_sums<1, 1>(
        n, chunks, 1,
        [&](int64_t p, int64_t r0, int64_t r_end, float(&acc)[1][1]) {
            for (int64_t r = r0; r < r_end; r += kWarps * kAhead) {
                float values[kAhead];
#pragma unroll
                for (int u = 0; u < kAhead; ++u)
                    values[u] = r + u * kWarps < r_end ? partial[(r + u * kWarps) * n + p] : 0.0f;
#pragma unroll
                for (int u = 0; u < kAhead; ++u) acc[0][0] += values[u];
            }
        },
        outs, nullptr);
}

inline int64_t add_chunks_blocks(int64_t n) {
    return (n + 31) / 32;
}

}  // namespace aclip::cuda::columns
