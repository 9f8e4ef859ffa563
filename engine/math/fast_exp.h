// fast_exp.h: e^x for f32 written as plain arithmetic, so a loop of them vectorises (the C library's
// expf is an opaque call). Cephes' expf: x = n ln2 + r with |r| <= ln2/2, e^r by a degree-7 polynomial
// (1 + r + r^2 P(r), P evaluated in Estrin's pairs: a chain half as deep as Horner's rule),
// times 2^n built in the exponent bits. Max error about 1 ulp over the normal range (tests/unit/test_math.cpp
// checks it against double exp). Inputs below -87.3 give 0 (so -inf masks stay exactly 0), above 88.7 +inf.
#pragma once
#include <cstdint>

#include "engine/math/host_device.h"

namespace aclip {

AC_HD float exp_f32(float x) {
    const float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
    float xc = x > 88.7f ? 88.7f : (x < -87.3f ? -87.3f : x);
    const float kRound = 12582912.0f;  // 1.5 * 2^23: adding and subtracting it rounds to nearest
    float n = (xc * kLog2e + kRound) - kRound;
    float r = xc - n * kLn2Hi - n * kLn2Lo;
    // e^r = 1 + r + r^2 P(r), P in Estrin's pairs (a short dependency chain). Written out rather than by
    // fast_erf.h's polynomial(), which groups the pairs otherwise: either grouping here moves the last
    // bits, and the golden 5-step trajectory (tests/model/test_aclip_golden.cpp) with them.
    const float r2 = r * r;
    const float p01 = 5.0000001201e-1f + 1.6666665459e-1f * r, p23 = 4.1665795894e-2f + 8.3334519073e-3f * r,
                p45 = 1.3981999507e-3f + 1.9875691500e-4f * r;
    const float p = (p01 + (p23 + p45 * r2) * r2) * r2 + r + 1.0f;
    // 2^n as two normal powers of two (n reaches 128 near the top of the range, past the exponent field)
    int32_t n1 = static_cast<int32_t>(n) >> 1, n2 = static_cast<int32_t>(n) - n1;
    int32_t bits1 = (n1 + 127) << 23, bits2 = (n2 + 127) << 23;
#if defined(__CUDA_ARCH__)
    float y = p * __int_as_float(bits1) * __int_as_float(bits2);
#else
    float y = p * __builtin_bit_cast(float, bits1) *
              __builtin_bit_cast(float, bits2);  // memcpy would stop the vectoriser
#endif
    y = x < -87.3f ? 0.0f : y;
    y = x > 88.7f ? __builtin_huge_valf() : y;
    return x != x ? x : y;  // NaN stays NaN
}

}  // namespace aclip
