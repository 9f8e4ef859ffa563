// index_add.cuh: index_add on the GPU, the adjoint of index_select (the backward of embedding and of
// gather_rows): dst (O, S, I) += src (O, L, I) at the rows an index names. An index may repeat (a token
// in a batch of texts), so several source rows add into one destination row. Adding them with atomics,
// in whatever order threads arrive, gives other last bits on every run; here each destination row adds
// its source rows in their order, value by value as the CPU op does, so the result is the CPU's bit for
// bit and the same on every run (a resumed GPU run ends where an uninterrupted one does).
// Five passes over the n = O L source rows and the K = O S destination rows:
//   count_rows     count[k]: how many source rows go to row k (integer atomics, exact in any order)
//   scan_counts    start[k] = count[0] + ... + count[k - 1] (one block)
//   place_rows     each source row's number p into its destination's bucket, order[start[k] ...], in
//                  arrival order
//   order_buckets  each bucket sorted: p goes to sorted[start[k] + the bucket's rows below p], counted in
//                  two parts: those in earlier tiles of kTile rows (once per tile and key, over the
//                  bucket) and those before p in its own tile (in shared memory). A short bucket is
//                  counted by the tile's first row of its key; a long one (the padding tokens': 16 K rows
//                  in a batch of 256 texts) by the whole block, kTile entries a pass, which one thread
//                  took 16 K loads in a row to do (about a millisecond, run 6). The tiles run side by side.
//   add_buckets    dst[k][i] += src[p][i] for the bucket's p in order, one thread per (k, i); the sums
//                  are a chain, but their operands are not: a thread loads kAhead of them at once (the
//                  next chunk's row numbers while it adds this chunk's values), so a long bucket waits
//                  for memory once a chunk instead of twice an element; a bucket's last rows (a short
//                  bucket's all) one at a time. The padding tokens' bucket is the whole op's time: 14 K
//                  rows a chain, 512 chains (run 7, kAhead 16: 1.78 ms for the token embedding's backward
//                  at batch 256, PyTorch's 0.42); 64 in flight is the next run's figure
// In a header so that tests/cuda/test_index_add_emulated.cpp runs it on emulated threads. The kernels sit
// in an unnamed namespace: index.cu and the test each compile their own.
#pragma once
#include <cstdint>

#include "engine/cuda/device_math.cuh"  // on the CPU, with warp_emulation.h
#include "engine/cuda/index_fault.cuh"

namespace aclip::cuda {

// Rows of x (O, S, I) picked by index: index[l] for every o, or index[o * L + l] (batched: index_stride L).
struct RowIndex {
    const int64_t* index;
    int64_t index_stride;  // 0, or L when each o has its own row of indices
    IndexFault* fault;
    const char* op;
};

namespace index_add_kernels {
namespace {

constexpr int kScanThreads = 1024;  // scan_counts' one block
constexpr int kTile = 256;          // order_buckets' rows a block (its threads)
constexpr int kAhead = 64;          // add_buckets' source rows loaded together

// The destination row k = o S + row of source row p = o L + l, or -1 for an index out of range (which
// count_rows records as the fault).
__device__ __forceinline__ int64_t destination(const RowIndex& r, int64_t p, int64_t L, int64_t S) {
    const int64_t o = p / L, row = r.index[o * r.index_stride + p % L];
    return row >= 0 && row < S ? o * S + row : -1;
}

__global__ void count_rows(RowIndex r, int* count, int64_t n, int64_t L, int64_t S) {
    for (int64_t p = first_thread(); p < n; p += thread_count()) {
        const int64_t o = p / L, at = o * r.index_stride + p % L, row = r.index[at];
        if (index_in_range(r.fault, r.op, row, S, at)) atomic_add_int(count + o * S + row, 1);
    }
}

// One block of kScanThreads: thread t sums its run of count, thread 0 turns the runs' sums into their
// starts, and each thread writes its run's starts.
__global__ void scan_counts(const int* count, int* start, int64_t K) {
    __shared__ int run_starts[kScanThreads];
    const int t = threadIdx.x;
    const int64_t per = (K + kScanThreads - 1) / kScanThreads;
    const int64_t lo = t * per < K ? t * per : K, hi = lo + per < K ? lo + per : K;
    int sum = 0;
    for (int64_t k = lo; k < hi; ++k) sum += count[k];
    run_starts[t] = sum;
    __syncthreads();
    if (t == 0) {
        int total = 0;
        for (int i = 0; i < kScanThreads; ++i) {
            const int c = run_starts[i];
            run_starts[i] = total;
            total += c;
        }
    }
    __syncthreads();
    int at = run_starts[t];
    for (int64_t k = lo; k < hi; ++k) {
        start[k] = at;
        at += count[k];
    }
}

__global__ void place_rows(RowIndex r, const int* start, int* filled, int* order, int64_t n, int64_t L,
                           int64_t S) {
    for (int64_t p = first_thread(); p < n; p += thread_count()) {
        const int64_t k = destination(r, p, L, S);
        if (k >= 0) order[start[k] + atomic_add_int(filled + k, 1)] = static_cast<int>(p);
    }
}

// A block of kTile threads a tile of rows: launched with ceil(n / kTile) blocks.
__global__ void order_buckets(RowIndex r, const int* start, const int* count, const int* order, int* sorted,
                              int64_t n, int64_t L, int64_t S) {
    __shared__ int64_t keys[kTile];
    __shared__ int
        earlier_tiles[kTile];         // at a tile's first row of each key: that key's rows before the tile
    __shared__ int long_keys[kTile];  // the first rows of keys whose buckets the block counts together
    __shared__ int long_key_count, block_before;
    const int t = threadIdx.x;
    const int64_t tile_start = static_cast<int64_t>(blockIdx.x) * kTile, p = tile_start + t;
    const int64_t k = p < n ? destination(r, p, L, S) : -1;
    keys[t] = k;
    if (t == 0) long_key_count = 0;
    __syncthreads();
    int first = t, before_here = 0;  // the tile's first row of key k, and its rows of k before this one
    for (int j = t - 1; j >= 0; --j)
        if (keys[j] == k) {
            first = j;
            ++before_here;
        }
    if (k >= 0 && first == t) {
        const int* bucket = order + start[k];
        if (count[k] <= kTile) {
            int before = 0;
            for (int j = 0; j < count[k]; ++j) before += bucket[j] < tile_start;
            earlier_tiles[t] = before;
        } else {
            long_keys[atomic_add_int(&long_key_count, 1)] = t;  // their order does not matter
        }
    }
    __syncthreads();
    for (int key = 0; key < long_key_count; ++key) {  // the same count in every thread
        const int at = long_keys[key];
        const int* bucket = order + start[keys[at]];
        int before = 0;
        for (int j = t; j < count[keys[at]]; j += kTile) before += bucket[j] < tile_start;
        if (t == 0) block_before = 0;
        __syncthreads();
        atomic_add_int(&block_before, before);  // integers: the same total in any order
        __syncthreads();
        if (t == 0) earlier_tiles[at] = block_before;
        __syncthreads();
    }
    if (k >= 0) sorted[start[k] + earlier_tiles[first] + before_here] = static_cast<int>(p);
}

template <class T>
__global__ void add_buckets(T* dst, const T* src, const int* start, const int* count, const int* sorted,
                            int64_t K, int64_t I) {
    for (int64_t q = first_thread(); q < K * I; q += thread_count()) {
        const int64_t k = q / I, i = q % I;
        const int c = count[k];
        if (c == 0) continue;
        const int* bucket = sorted + start[k];
        T acc = dst[q];
        int j = 0;
        if (c >= kAhead) {  // whole chunks: a chunk's values loaded together, the next chunk's rows meanwhile
            int rows[kAhead];
#pragma unroll
            for (int u = 0; u < kAhead; ++u) rows[u] = bucket[u];
            for (; j + kAhead <= c; j += kAhead) {
                T values[kAhead];
#pragma unroll
                for (int u = 0; u < kAhead; ++u) values[u] = src[rows[u] * I + i];
                const bool more = j + 2 * kAhead <= c;
#pragma unroll
                for (int u = 0; u < kAhead; ++u) rows[u] = more ? bucket[j + kAhead + u] : 0;
#pragma unroll
                for (int u = 0; u < kAhead; ++u) acc = st<T>(ld(acc) + ld(values[u]));
            }
        }
        for (; j < c; ++j) acc = st<T>(ld(acc) + ld(src[bucket[j] * I + i]));  // the rest (short buckets)
        dst[q] = acc;
    }
}

}  // namespace
}  // namespace index_add_kernels

}  // namespace aclip::cuda
