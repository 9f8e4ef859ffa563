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

std::optional<Strides> view_strides(const Shape& shape, const Strides& strides, const Shape& target) {
    Strides out(target.size());
    if (shape_numel(shape) == 0) return contiguous_strides(target);
    // Walk the source from its last dim, one run of mutually contiguous dims at a time (size-1 dims join
    // any run); the target's dims from the back must fill each run exactly, stepping by the run's stride.
    int64_t t = static_cast<int64_t>(target.size()) - 1;
    int64_t base = strides.empty() ? 1 : strides.back();  // the stride of the run's innermost dim
    int64_t run_numel = 1, target_numel = 1;
    for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
        run_numel *= shape[d];
        const bool run_ends = d == 0 || (shape[d - 1] != 1 && strides[d - 1] != run_numel * base);
        if (!run_ends) continue;
        while (t >= 0 && (target_numel < run_numel || target[t] == 1)) {
            out[t] = target_numel * base;
            target_numel *= target[t];
            --t;
        }
        if (target_numel != run_numel) return std::nullopt;
        if (d > 0) base = strides[d - 1], run_numel = 1, target_numel = 1;
    }
    while (t >= 0 && target[t] == 1) out[t] = 1, --t;  // leading size-1 dims of a scalar's view
    if (t >= 0) return std::nullopt;
    return out;
}

}  // namespace aclip
