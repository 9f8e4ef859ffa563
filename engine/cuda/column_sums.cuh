// column_sums.cuh: sums down the columns of a matrix, the reduction behind bias gradients (a (rows, N)
// gradient summed over its rows), LayerNorm's weight and bias gradients, and any sum over a middle dim.
// A block takes 32 V adjacent columns and one chunk of the rows: its 8 warps take every eighth row of the
// chunk and each lane V adjacent columns, so a warp reads 32 V contiguous elements a row (512 bytes with
// 16-byte packs). The warps' sums meet in shared memory and are added in warp order; the chunks' sums are
// added by a second pass in chunk order, so the same inputs give the same bits on every run.
// In a header so that tests/cuda/test_column_sums_emulated.cpp can run it on emulated threads
// (warp_emulation.h) on a machine without a GPU.
#pragma once
#include <cstdint>

#if !defined(__CUDACC__)
#include "engine/cuda/warp_emulation.h"
#endif

namespace aclip::cuda::columns {

constexpr int kWarps = 8;
constexpr int kThreads = 32 * kWarps;

// K sums for each of the columns 32 V blockIdx.x .. 32 V (blockIdx.x + 1) - 1 of n, over the rows of chunk
// blockIdx.y of `chunks` (rows c R / chunks .. (c + 1) R / chunks - 1). For a lane's first column p (a
// multiple of V, p < n, and p + V <= n), sum_rows(p, r0, r_end, acc) adds the terms of rows r0, r0 + kWarps,
// ... below r_end into acc[k][0 .. V). store(k, column, value) then receives each sum once.
template <int K, int V, class SumRows, class Store>
__device__ __forceinline__ void chunk_sums(int64_t n, int64_t R, int64_t chunks, SumRows sum_rows,
                                           Store store) {
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
        store(k, column, s);
    }
}

}  // namespace aclip::cuda::columns
