// test_util.h: helpers shared by the test suites: element-wise closeness with a stated tolerance,
// seeded random tensors, and the path of the committed fixtures.
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>

#include "engine/core/tensor.h"
#include "engine/math/philox.h"
#include "engine/ops/ops.h"

namespace aclip::test {

// Largest |a - b| - rtol*|b| over elements (<= atol means close); shapes must match. NaN counts as far.
struct Closeness {
    bool ok = true;
    double max_abs = 0;
    std::string first_bad;
};

inline Closeness compare(const Tensor& actual, const Tensor& expected, double atol, double rtol) {
    Closeness c;
    if (actual.shape() != expected.shape()) {
        c.ok = false;
        c.first_bad = "shape " + shape_str(actual.shape()) + " vs " + shape_str(expected.shape());
        return c;
    }
    auto a = actual.to_vector<double>(), b = expected.to_vector<double>();
    for (size_t i = 0; i < a.size(); ++i) {
        double d = std::abs(a[i] - b[i]);
        bool same_nonfinite = (std::isnan(a[i]) && std::isnan(b[i])) || (std::isinf(b[i]) && a[i] == b[i]);
        if (same_nonfinite) continue;
        if (!(d <= atol + rtol * std::abs(b[i]))) {
            if (c.ok) c.first_bad = str_cat("element ", i, ": ", a[i], " vs ", b[i]);
            c.ok = false;
        }
        if (d > c.max_abs || std::isnan(d)) c.max_abs = d;
    }
    return c;
}

#define CHECK_CLOSE(actual, expected, atol, rtol)                                    \
    do {                                                                             \
        auto _c = ::aclip::test::compare((actual), (expected), (atol), (rtol));      \
        INFO("max |diff| = " << _c.max_abs << "; first mismatch: " << _c.first_bad); \
        CHECK(_c.ok);                                                                \
    } while (0)

// ||a - b|| / ||b||: the relative error of a whole tensor, meaningful for gradients with tiny entries.
inline double norm_rel_error(const Tensor& a, const Tensor& b) {
    std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
    double num = 0, den = 0;
    for (size_t i = 0; i < x.size(); ++i) {
        num += (x[i] - y[i]) * (x[i] - y[i]);
        den += y[i] * y[i];
    }
    return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// Uniform in [lo, hi), from the Philox stream with this seed.
inline Tensor random_tensor(const Shape& shape, uint64_t seed, double lo = -1, double hi = 1,
                            DType dtype = DType::F64) {
    Tensor t = empty(shape, DType::F64);
    double* p = t.data<double>();
    for (int64_t i = 0; i < t.numel(); ++i)
        p[i] = lo + (hi - lo) * uniform_from_word(philox_word(seed, 0, i));
    return t.to(dtype);
}

// The message of the aclip::Error that fn throws, or "" when it throws none.
inline std::string error_of(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

inline std::string fixture_path(const std::string& name) {
    return std::string(ACLIP_FIXTURES_DIR) + "/" + name;
}

}  // namespace aclip::test
