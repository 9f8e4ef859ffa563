// launch.h: host-only launch arithmetic of the CUDA kernels (grid sizes, vector widths, operand
// layouts), in plain C++ so that the unit tests check it on machines without a GPU.
#pragma once
#include <algorithm>
#include <cstdint>
#include <initializer_list>

#include "engine/core/error.h"
#include "engine/core/shape.h"
#include "engine/math/host_device.h"

namespace aclip::cuda {

constexpr int kMaxDims = 8;  // tensors of higher rank are refused by the CUDA kernels

// Division by a divisor fixed at launch as a multiply and a shift (Granlund and Montgomery): with s the
// least such that 2^s >= d and m = floor(2^32 (2^s - d) / d) + 1, n / d = (umulhi(n, m) + n) >> s for every
// n < 2^31 (the sum then fits in 32 bits). Strided kernels take their index apart dim by dim: a 64-bit
// division is a long instruction sequence on the GPU, this one a multiply.
struct Divider {
    uint32_t magic = 1, shift = 0;  // d = 1
};
inline Divider divider_for(uint32_t d) {
    AC_CHECK(d >= 1 && d <= (1u << 31), "divider_for: divisor ", d, " outside 1 .. 2^31");
    uint32_t shift = 0;
    while ((uint64_t(1) << shift) < d) ++shift;
    const uint64_t magic = (uint64_t(1) << 32) * ((uint64_t(1) << shift) - d) / d + 1;
    return {static_cast<uint32_t>(magic), shift};
}
AC_HD uint32_t divide(uint32_t n, Divider v) {  // n / d for n < 2^31
#if defined(__CUDA_ARCH__)
    const uint32_t high = __umulhi(n, v.magic);
#else
    const uint32_t high = static_cast<uint32_t>((static_cast<uint64_t>(n) * v.magic) >> 32);
#endif
    return (high + n) >> v.shift;
}

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
// With fewer than 2^31 elements in all (index32), the kernels take the index apart in 32 bits by the
// dims' Dividers.
struct CollapsedDims {
    int ndim = 0;
    int64_t shape[kMaxDims] = {};
    int64_t strides[4][kMaxDims] = {};
    bool index32 = false;
    Divider divider[kMaxDims] = {};
};
// index32 and the Dividers, from the dims' sizes.
inline void set_index32(CollapsedDims& c) {
    int64_t n = 1;
    for (int d = 0; d < c.ndim; ++d) n *= c.shape[d];
    c.index32 = n > 0 && n < (int64_t(1) << 31);
    if (c.index32)
        for (int d = 0; d < c.ndim; ++d) c.divider[d] = divider_for(static_cast<uint32_t>(c.shape[d]));
}

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
    set_index32(c);
    return c;
}

// Whether a strided copy over dims (operands 0 and 1) can move V elements at a time, and the dims that count
// its packs: the last dim contiguous in both (stride 1: no broadcast there) and whole packs long, every
// other stride a multiple of V, so that each pack is V consecutive elements at a multiple of V from its
// operand's start (a patch embedding's permute: runs of 16 pixels). Packs' dims: the last dim's size
// divided by V, its stride V elements.
inline bool pack_dims(const CollapsedDims& dims, int V, CollapsedDims& packs) {
    const int last = dims.ndim - 1;
    if (last < 0 || dims.shape[last] % V != 0) return false;
    for (int k = 0; k < 2; ++k) {
        if (dims.strides[k][last] != 1) return false;
        for (int d = 0; d < last; ++d)
            if (dims.strides[k][d] % V != 0) return false;
    }
    packs = dims;
    packs.shape[last] /= V;
    packs.strides[0][last] = packs.strides[1][last] = V;
    set_index32(packs);
    return true;
}

}  // namespace aclip::cuda
