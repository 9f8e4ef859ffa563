// strided_loop.h: the one loop every elementwise CPU kernel runs on.
// A tensor op over `shape` with N operands (each with its own element strides, 0 on broadcast dims) is
// cut into rows along the last dim; rows run in parallel (OpenMP) when there is enough work, and the
// body handles one row with a plain strided inner loop the compiler can vectorise when strides are 1.
#pragma once
#include <array>
#include <cstdint>

#include "engine/core/shape.h"

namespace aclip {

// Element strides of a tensor with (shape, strides) as seen broadcast to `out_shape`.
Strides broadcast_strides(const Shape& shape, const Strides& strides, const Shape& out_shape);

constexpr int64_t kParallelGrain = 1 << 15;  // elements below which a loop stays on one thread

// body(row_offsets, n, inner_strides): process n elements; operand i starts at row_offsets[i] and
// advances by inner_strides[i].
template <size_t N, class Body>
void for_each_row(const Shape& shape, const std::array<Strides, N>& strides, Body&& body) {
    const int64_t ndim = static_cast<int64_t>(shape.size());
    const int64_t inner = ndim ? shape[ndim - 1] : 1;
    const int64_t total = shape_numel(shape);
    if (total == 0) return;
    const int64_t rows = total / inner;
    std::array<int64_t, N> inner_strides{};
    for (size_t i = 0; i < N; ++i) inner_strides[i] = ndim ? strides[i][ndim - 1] : 0;
    auto row_body = [&](int64_t r) {
        std::array<int64_t, N> off{};
        int64_t rem = r;
        for (int64_t d = ndim - 2; d >= 0; --d) {
            int64_t idx = rem % shape[d];
            rem /= shape[d];
            for (size_t i = 0; i < N; ++i) off[i] += idx * strides[i][d];
        }
        body(off, inner, inner_strides);
    };
    if (total >= kParallelGrain && rows > 1) {
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < rows; ++r) row_body(r);
    } else {
        for (int64_t r = 0; r < rows; ++r) row_body(r);
    }
}

// Runs fn(i) for i in [0, n), in parallel when n * cost_per_item is large enough.
template <class Fn>
void parallel_for(int64_t n, int64_t cost_per_item, Fn&& fn) {
    if (n > 1 && n * cost_per_item >= kParallelGrain) {
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; ++i) fn(i);
    } else {
        for (int64_t i = 0; i < n; ++i) fn(i);
    }
}

}  // namespace aclip
