// shape.h: shapes and strides (in elements, not bytes) and the small algebra on them: element counts,
// contiguous strides, dimension wrapping, broadcasting.
#pragma once
#include <cstdint>
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

// NumPy broadcasting of two shapes; op names the caller in the error.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

}  // namespace aclip
