// launch.h: host-only launch arithmetic of the CUDA kernels (grid sizes, vector widths, operand
// layouts), in plain C++ so that the unit tests check it on machines without a GPU.
#pragma once
#include <algorithm>
#include <cstdint>
#include <initializer_list>

#include "engine/core/error.h"
#include "engine/core/shape.h"

namespace aclip::cuda {

constexpr int kMaxDims = 8;  // tensors of higher rank are refused by the CUDA kernels

// Whether every given pointer (null ones pass) is aligned to `bytes`: the vectorised paths' condition.
inline bool all_aligned(std::initializer_list<const void*> pointers, size_t bytes) {
    for (const void* p : pointers)
        if (reinterpret_cast<uintptr_t>(p) % bytes != 0) return false;
    return true;
}

// Blocks for a grid-stride loop over n items with `threads` per block: enough to fill the GPU a few
// times over (132 SMs x 16 blocks), never more than the items need, at least one.
inline int64_t grid_for(int64_t n, int threads, int64_t max_blocks = 132 * 16) {
    int64_t need = (n + threads - 1) / threads;
    return std::max<int64_t>(1, std::min(need, max_blocks));
}

// Row chunks for column sums (column_sums.cuh) over `column_blocks` blocks of columns: enough blocks in
// all to fill the GPU (1024: about 8 per SM of an H100) where the columns alone do not, each chunk at
// least 32 rows (four a warp), at least one.
inline int64_t column_chunks(int64_t column_blocks, int64_t rows) {
    const int64_t wanted = (1024 + column_blocks - 1) / std::max<int64_t>(column_blocks, 1);
    return std::clamp<int64_t>(wanted, 1, std::max<int64_t>(1, rows / 32));
}

// Packs of V elements a lane holds for a warp to keep a row of D elements in registers (RowSlice,
// device_math.cuh): the smallest of 1, 2, 3, 4, 6, 8 with 32 V P >= D (3 for 768 bf16 in packs of 8, 6
// for 768 f32 in packs of 4); 8 past that, the row then taken in slices of 256 V.
inline int packs_for_row(int64_t D, int V) {
    const int64_t packs = (D + 32 * V - 1) / (32 * V);
    for (int p : {1, 2, 3, 4, 6})
        if (packs <= p) return p;
    return 8;
}

// Shape and strides with dims of size 1 dropped and neighbouring dims merged wherever every operand
// is contiguous across them, so most broadcasts become 1-D or 2-D loops. strides[k] holds operand k.
struct CollapsedDims {
    int ndim = 0;
    int64_t shape[kMaxDims] = {};
    int64_t strides[4][kMaxDims] = {};
};
inline CollapsedDims collapse_dims(const Shape& shape, const Strides* const* strides, int operands) {
    AC_CHECK(static_cast<int>(shape.size()) <= kMaxDims, "CUDA kernels take tensors of at most ", kMaxDims,
             " dims, got ", shape_str(shape));
    CollapsedDims c;
    for (size_t d = 0; d < shape.size(); ++d) {
        if (shape[d] == 1) continue;
        bool merge = c.ndim > 0;
        for (int k = 0; merge && k < operands; ++k)
            merge = c.strides[k][c.ndim - 1] == (*strides[k])[d] * shape[d];
        if (merge) {
            c.shape[c.ndim - 1] *= shape[d];
            for (int k = 0; k < operands; ++k) c.strides[k][c.ndim - 1] = (*strides[k])[d];
        } else {
            c.shape[c.ndim] = shape[d];
            for (int k = 0; k < operands; ++k) c.strides[k][c.ndim] = (*strides[k])[d];
            ++c.ndim;
        }
    }
    return c;
}

}  // namespace aclip::cuda
