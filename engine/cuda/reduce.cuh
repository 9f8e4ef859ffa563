// reduce.cuh: the sum kernels of reduce.cu (see there), in a header so that
// tests/cuda/test_reduce_emulated.cpp can also compile them for the CPU and run them on emulated threads
// (warp_emulation.h) against the CPU's sum: a warp per row, blocks per long row, and column sums.
#pragma once
#include <cstdint>

#include "engine/cuda/column_sums.cuh"
#include "engine/cuda/device_math.cuh"

namespace aclip::cuda::reduce_kernels {

constexpr int kThreads = 256;

// Out: the output's type, T or f32 (sums in f32 either way, rounded to Out once at the end).

// I == 1: one warp per output row, lanes stride over R.
template <class T, class Out = T>
__global__ void sum_rows_kernel(const T* x, Out* out, int64_t O, int64_t R) {
    const int64_t row = warp_row();
    const int lane = threadIdx.x % 32;
    if (row >= O) return;
    const T* xr = x + row * R;
    float s = 0.0f;
    for (int64_t r = lane; r < R; r += 32) s += ld(xr[r]);
    s = warp_sum(s);
    if (lane == 0) out[row] = st<Out>(s);
}

// I == 1 with few rows: block (c, o) sums slice c of row o into partial[c, o] (then columns::add_chunks).
template <class T>
__global__ void sum_rows_partial(const T* x, float* partial, int64_t O, int64_t R, int64_t chunks) {
    __shared__ float shared[32];
    const int64_t c = blockIdx.x, o = blockIdx.y;
    const int64_t r0 = c * R / chunks, r1 = (c + 1) * R / chunks;
    const T* xr = x + o * R;
    float s = 0.0f;
    for (int64_t r = r0 + threadIdx.x; r < r1; r += blockDim.x) s += ld(xr[r]);
    s = block_sum(s, shared);
    if (threadIdx.x == 0) partial[c * O + o] = s;
}

// I > 1: the columns of the (O, R, I) view, column p = (o, i) of n = O I, summed over R
// (column_sums.cuh: into out with one row chunk, else into partial). With V > 1, I is a multiple of V: a
// lane's V columns lie in one o.
template <class T, int V, class Out = T>
__global__ void __launch_bounds__(columns::kThreads)
    sum_columns_kernel(const T* x, float* partial, Out* out, int64_t n, int64_t R, int64_t I,
                       int64_t chunks) {
    Out* const outs[1] = {out};
    columns::chunk_sums<1, V>(
        n, R, chunks,
        [&](int64_t p, int64_t r0, int64_t r_end, float(&acc)[1][V]) {
            const T* column = x + (p / I) * R * I + p % I;
#pragma unroll 4
            for (int64_t r = r0; r < r_end; r += columns::kWarps) {
                const Pack<T, V> values = load_pack<T, V>(column + r * I);
#pragma unroll
                for (int v = 0; v < V; ++v) acc[0][v] += ld(values.v[v]);
            }
        },
        outs, partial);
}

}  // namespace aclip::cuda::reduce_kernels
