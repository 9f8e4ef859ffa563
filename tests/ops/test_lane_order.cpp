// test_lane_order.cpp: sum's, softmax's and layer_norm's row sums add in lane_sum's fixed order
// (engine/cpu/lane_sum.h). Those ops are compiled for the build machine's widest vectors (ACLIP_NATIVE);
// this file is not, and writes each op as plain scalar loops with that order spelled out. Equal bits mean
// the native build computes what a portable build computes; an `omp simd` reduction in the op (adding in
// its vector width's order) fails here.
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/math/fast_exp.h"
#include "test_util.h"

using namespace aclip;
using aclip::test::random_tensor;

namespace {

// The sum of terms in lane_sum's order: term i to lane i % 16, each lane in order, lanes by halving.
float lane_order_sum(const std::vector<float>& terms) {
    float lanes[16] = {};
    for (size_t i = 0; i < terms.size(); ++i) lanes[i % 16] += terms[i];
    for (int half = 8; half > 0; half /= 2)
        for (int j = 0; j < half; ++j) lanes[j] += lanes[j + half];
    return lanes[0];
}

// Rows of D values spanning a wide range, with a fixed seed per width.
Tensor rows_of(int64_t R, int64_t D, uint64_t seed) {
    return random_tensor({R, D}, seed, -6, 6, DType::F32);
}

// The bits of each element equal (NaN-free inputs): memcmp-strict, so -0 and +0 differ too.
template <class V>
void check_same_bits(const Tensor& got, const std::vector<V>& want, const char* what, int64_t D) {
    const std::vector<V> g = got.to_vector<V>();
    REQUIRE(g.size() == want.size());
    int64_t differing = 0;
    for (size_t i = 0; i < g.size(); ++i) differing += std::memcmp(&g[i], &want[i], sizeof(V)) != 0;
    INFO(std::string(what), " D = ", D);
    CHECK(differing == 0);
}

}  // namespace

TEST_SUITE("ops") {
    TEST_CASE(
        "sum, softmax and layer_norm add their rows in lane_sum's order, bit for bit at any vector width") {
        NoGradGuard no_grad;
        const int64_t R = 5;
        for (int64_t D : {1, 3, 15, 16, 17, 33, 64, 197, 768}) {
            const Tensor x = rows_of(R, D, 700 + D), g = rows_of(R, D, 900 + D);
            const std::vector<float> xv = x.to_vector<float>(), gv = g.to_vector<float>();
            std::vector<float> soft(R * D), log_soft(R * D), soft_grad(R * D), norm(R * D), norm_grad(R * D);
            const Tensor w = rows_of(1, D, 11).reshape({D}), b = rows_of(1, D, 12).reshape({D});
            const std::vector<float> wv = w.to_vector<float>(), bv = b.to_vector<float>();
            for (int64_t r = 0; r < R; ++r) {
                const float* xr = xv.data() + r * D;
                float m = -std::numeric_limits<float>::infinity();
                for (int64_t i = 0; i < D; ++i) m = std::max(m, xr[i]);
                std::vector<float> e(D), terms(D);
                for (int64_t i = 0; i < D; ++i) e[i] = exp_f32(xr[i] - m);
                const float s = lane_order_sum(e), inv = 1.0f / s, lse = m + std::log(s);
                for (int64_t i = 0; i < D; ++i) {
                    soft[r * D + i] = e[i] * inv;
                    log_soft[r * D + i] = xr[i] - lse;
                    terms[i] = gv[r * D + i] * soft[r * D + i];
                }
                const float sc = lane_order_sum(terms);
                for (int64_t i = 0; i < D; ++i) soft_grad[r * D + i] = soft[r * D + i] * (gv[r * D + i] - sc);

                const float mean = lane_order_sum(std::vector<float>(xr, xr + D)) / static_cast<float>(D);
                for (int64_t i = 0; i < D; ++i) terms[i] = (xr[i] - mean) * (xr[i] - mean);
                const float rs = 1.0f / std::sqrt(lane_order_sum(terms) / static_cast<float>(D) + 1e-5f);
                std::vector<float> dxhat(D), dxhat_xhat(D);
                for (int64_t i = 0; i < D; ++i) {
                    const float xhat = (xr[i] - mean) * rs;
                    norm[r * D + i] = xhat * wv[i] + bv[i];
                    dxhat[i] = gv[r * D + i] * wv[i];
                    dxhat_xhat[i] = dxhat[i] * xhat;
                }
                const float a = lane_order_sum(dxhat) / static_cast<float>(D),
                            c = lane_order_sum(dxhat_xhat) / static_cast<float>(D);
                for (int64_t i = 0; i < D; ++i)
                    norm_grad[r * D + i] = rs * (dxhat[i] - a - (xr[i] - mean) * rs * c);
            }
            // sum adds in double: f64 values show its order (f32 ones' sums would round alike)
            const Tensor x64 = random_tensor({R, D}, 800 + D, -6, 6, DType::F64);
            const std::vector<double> x64v = x64.to_vector<double>();
            std::vector<double> row_sums(R);
            for (int64_t r = 0; r < R; ++r) {
                double lanes[16] = {};
                for (int64_t i = 0; i < D; ++i) lanes[i % 16] += x64v[r * D + i];
                for (int half = 8; half > 0; half /= 2)
                    for (int j = 0; j < half; ++j) lanes[j] += lanes[j + half];
                row_sums[r] = lanes[0];
            }
            check_same_bits(sum(x64, {-1}), row_sums, "sum", D);
            check_same_bits(softmax(x, -1), soft, "softmax", D);
            check_same_bits(log_softmax(x, -1), log_soft, "log_softmax", D);
            check_same_bits(softmax_backward(softmax(x, -1), g), soft_grad, "softmax_backward", D);
            check_same_bits(layer_norm(x, w, b, 1e-5), norm, "layer_norm", D);
            Tensor xg = x.clone().requires_grad_();
            {
                GradModeGuard grad(true);
                layer_norm(xg, w, b, 1e-5).backward(g);
            }
            check_same_bits(xg.grad(), norm_grad, "layer_norm's input gradient", D);
        }
    }
}
