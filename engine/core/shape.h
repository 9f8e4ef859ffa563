// shape.h: shapes and strides (in elements, not bytes) and the small algebra on them: element counts,
// contiguous strides, dimension wrapping, broadcasting.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace aclip {

using Shape = std::vector<int64_t>;
using Strides = std::vector<int64_t>;

int64_t shape_numel(const Shape& s);
Strides contiguous_strides(const Shape& s);
std::string shape_str(const Shape& s);  // "[2, 3, 4]"

// Wraps a possibly negative dim into [0, ndim); op names the caller in the error.
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op);

// The strides under which memory laid out by (shape, strides) reads as target, which has as many
// elements; none when target would need a copy. Each run of dims that are contiguous with one another may
// be split or merged freely; a dim of target may not span two runs. A contiguous tensor takes any target.
std::optional<Strides> view_strides(const Shape& shape, const Strides& strides, const Shape& target);

// NumPy broadcasting of two shapes; op names the caller in the error.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

}  // namespace aclip
