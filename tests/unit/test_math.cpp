// test_math.cpp: the scalar maths shared by CPU and CUDA: Philox against the published test vectors and
// the statistics of its draws, bf16 rounding (exhaustively), and the accuracy of the vectorisable exp.
#include <algorithm>
#include <cmath>

#include "engine/math/bf16.h"
#include "engine/math/fast_erf.h"
#include "engine/math/fast_exp.h"
#include "engine/nn/init.h"
#include "test_util.h"

using namespace aclip;

TEST_SUITE("unit") {
    TEST_CASE("philox4x32-10 matches Random123's known-answer vectors") {
        Philox4 z = philox4x32_10_raw(Philox4{{0, 0, 0, 0}}, 0, 0);
        CHECK(z.v[0] == 0x6627e8d5u);
        CHECK(z.v[1] == 0xe169c58du);
        CHECK(z.v[2] == 0xbc57ac4cu);
        CHECK(z.v[3] == 0x9b00dbd8u);
        Philox4 f = philox4x32_10_raw(Philox4{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}},
                                      0xffffffffu, 0xffffffffu);
        CHECK(f.v[0] == 0x408f276du);
        CHECK(f.v[1] == 0x41c83b0eu);
        CHECK(f.v[2] == 0xa20bc7c6u);
        CHECK(f.v[3] == 0x6d5451fdu);
        Philox4 p = philox4x32_10_raw(Philox4{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}},
                                      0xa4093822u, 0x299f31d0u);
        CHECK(p.v[0] == 0xd16cfe09u);
        CHECK(p.v[1] == 0x94fdccebu);
        CHECK(p.v[2] == 0x5001e420u);
        CHECK(p.v[3] == 0x24126ea1u);
    }

    TEST_CASE("normal and uniform draws have the right moments; trunc_normal stays in range") {
        Generator gen(7);
        Tensor n = empty({200000});
        init_normal(n, gen, 1.0, 2.0);
        // standard error of the mean is 2/sqrt(2e5) ~ 0.0045; of the std about 0.0032
        CHECK(mean(n).item() == doctest::Approx(1.0).epsilon(0.02));
        CHECK(std::sqrt(var(n, {0}).item()) == doctest::Approx(2.0).epsilon(0.01));
        Tensor u = empty({200000});
        init_uniform(u, gen, -3, 1);
        CHECK(mean(u).item() == doctest::Approx(-1.0).epsilon(0.01));
        auto uv = u.to_vector<float>();
        CHECK(*std::min_element(uv.begin(), uv.end()) >= -3.0f);
        CHECK(*std::max_element(uv.begin(), uv.end()) < 1.0f);
        Tensor t = empty({100000});
        init_trunc_normal(t, gen, 0.02);
        auto tv = t.to_vector<float>();
        CHECK(*std::max_element(tv.begin(), tv.end()) <= 0.04f);
        CHECK(*std::min_element(tv.begin(), tv.end()) >= -0.04f);
        // N(0,1) truncated at +-2 has std 0.8796
        CHECK(std::sqrt(var(t, {0}).item()) == doctest::Approx(0.02 * 0.8796).epsilon(0.02));
    }

    TEST_CASE("the same seed gives the same parameters; draws do not overlap") {
        Generator a(3), b(3);
        Tensor x = empty({5, 7}), y = empty({5, 7}), z = empty({5, 7});
        init_normal(x, a, 0, 1);
        init_normal(y, b, 0, 1);
        init_normal(z, a, 0, 1);
        CHECK(x.to_vector<float>() == y.to_vector<float>());
        CHECK(x.to_vector<float>() != z.to_vector<float>());
    }

    TEST_CASE("bf16: all 65536 bit patterns round-trip; rounding is to nearest even") {
        for (uint32_t bits = 0; bits < 65536; ++bits) {
            bf16 h{static_cast<uint16_t>(bits)};
            float f = bf16_to_f32(h);
            if (std::isnan(f)) {
                CHECK(std::isnan(bf16_to_f32(bf16_from_f32(f))));
                continue;
            }
            REQUIRE(bf16_from_f32(f).bits == bits);
        }
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0)
        CHECK(bf16_from_f32(1.0f + std::ldexp(1.0f, -8)).bits == bf16_from_f32(1.0f).bits);
        // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: goes up to the even one
        CHECK(bf16_to_f32(bf16_from_f32(1.0f + 3 * std::ldexp(1.0f, -8))) == 1.0f + std::ldexp(1.0f, -6));
        // just above the halfway point rounds up
        CHECK(bf16_to_f32(bf16_from_f32(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20))) ==
              1.0f + std::ldexp(1.0f, -7));
        CHECK(std::isinf(bf16_to_f32(bf16_from_f32(3.4e38f))));  // rounds past the largest finite bf16
    }
}

TEST_SUITE("unit") {
    TEST_CASE("exp_f32 is within 2 ulp of exp over the whole range; edges are exact") {
        double worst_ulps = 0;
        for (float x = -87.0f; x < 88.5f; x += 0.000731f) {
            double exact = std::exp(static_cast<double>(x));
            double ulp = std::ldexp(1.0, std::ilogb(exact) - 23);
            worst_ulps = std::max(worst_ulps, std::abs(exp_f32(x) - exact) / ulp);
        }
        CHECK(worst_ulps <= 2.0);
        CHECK(exp_f32(0.0f) == 1.0f);
        CHECK(exp_f32(-INFINITY) == 0.0f);  // masked attention scores stay exactly zero
        CHECK(exp_f32(-100.0f) == 0.0f);
        CHECK(std::isinf(exp_f32(100.0f)));
        CHECK(std::isnan(exp_f32(NAN)));
    }

    TEST_CASE("erf_f32 is within 2 ulp of erf everywhere; odd, saturating, NaN-preserving") {
        double worst_ulps = 0;
        float worst_x = 0;
        for (float x = -5.0f; x < 5.0f; x += 0.0000731f) {  // both pieces, the joins at 1 and 4, and past
            const double exact = std::erf(static_cast<double>(x));
            if (exact == 0.0) continue;
            const double ulp = std::ldexp(1.0, std::ilogb(exact) - 23);  // of the f32 nearest the value
            const double e = std::abs(erf_f32(x) - exact) / ulp;
            if (e > worst_ulps) worst_ulps = e, worst_x = x;
        }
        for (float x = 1e-30f; x < 1e-3f; x *= 1.37f) {  // tiny arguments: erf(x) = 2x / sqrt(pi)
            const double exact = std::erf(static_cast<double>(x));
            worst_ulps =
                std::max(worst_ulps, std::abs(erf_f32(x) - exact) / std::ldexp(1.0, std::ilogb(exact) - 23));
        }
        CAPTURE(worst_x);
        CHECK(worst_ulps <= 2.0);
        CHECK(erf_f32(0.0f) == 0.0f);
        CHECK(erf_f32(-0.5f) == -erf_f32(0.5f));
        CHECK(erf_f32(4.0f) == 1.0f);
        CHECK(erf_f32(INFINITY) == 1.0f);
        CHECK(erf_f32(-INFINITY) == -1.0f);
        CHECK(std::isnan(erf_f32(NAN)));
    }
}
