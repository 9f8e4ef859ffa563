// shape.cpp: see shape.h.
#include "engine/core/shape.h"

#include "engine/core/error.h"

namespace aclip {

int64_t shape_numel(const Shape& s) {
    int64_t n = 1;
    for (int64_t d : s) n *= d;
    return n;
}

Strides contiguous_strides(const Shape& s) {
    Strides st(s.size());
    int64_t acc = 1;
    for (size_t i = s.size(); i-- > 0;) {
        st[i] = acc;
        acc *= s[i];
    }
    return st;
}

std::string shape_str(const Shape& s) {
    std::string out = "[";
    for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + "]";
}

int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op) {
    int64_t wrapped = dim < 0 ? dim + ndim : dim;
    AC_CHECK(wrapped >= 0 && wrapped < ndim, op, ": dim ", dim, " is out of range for a tensor with ", ndim,
             " dims");
    return wrapped;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
    size_t n = std::max(a.size(), b.size());
    Shape out(n);
    for (size_t i = 0; i < n; ++i) {
        int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
        int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
        AC_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", shape_str(a), " and ", shape_str(b),
                 " do not broadcast (dim ", i, ": ", da, " vs ", db, ")");
        out[i] = da == 1 ? db : da;
    }
    return out;
}

}  // namespace aclip
