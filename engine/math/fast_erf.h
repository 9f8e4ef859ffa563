// fast_erf.h: erf(x) for f32 written as plain arithmetic, so a loop of GELUs vectorises on the CPU (the C
// library's erff is an opaque call, and was 6% of a quickstart training run by itself). Two pieces, split
// at |x| = 1, fitted by tools/reference/fit_erf.py (which prints these coefficients and the error):
//   |x| < 1:       erf(x) = x + x R(x^2), R a degree-6 polynomial (x added last, so its rounding is exact
//                  in the leading part);
//   1 <= |x| < 4:  erf(x) = 1 - exp(-x^2 + S((|x| - 2.5) / 1.5)), S(a) = log(erfc(a) e^(a^2)) being slowly
//                  varying, a degree-9 polynomial; exp is exp_f32;
//   |x| >= 4:      +-1 (erfc(4) is below half an ulp of 1).
// Both pieces are computed and one is selected, which keeps the loop branch-free. Error: about 1 ulp
// (tests/unit/test_math.cpp sweeps it against double erf); NaN stays NaN, +-inf give +-1.
#pragma once
#include "engine/math/fast_exp.h"
#include "engine/math/host_device.h"

namespace aclip {

// c[0] + c[1] x + ... + c[N-1] x^(N-1), by Estrin's scheme: pairs c[2i] + c[2i+1] x, then the same again
// in x^2 over the pairs. About log2(N) multiply-adds deep where Horner's rule is N - 1: a vector loop of
// them waits on the chain, not on the arithmetic units.
template <int N>
AC_HD float polynomial(float x, const float (&c)[N]) {
    if constexpr (N == 1) {
        return c[0];
    } else {
        float pairs[(N + 1) / 2];
        for (int i = 0; i < N / 2; ++i) pairs[i] = c[2 * i] + c[2 * i + 1] * x;
        if constexpr (N % 2 == 1) pairs[N / 2] = c[N - 1];
        return polynomial(x * x, pairs);
    }
}

AC_HD float erf_f32(float x) {
    // Coefficients from tools/reference/fit_erf.py, lowest power first.
    constexpr float kSmall[7] = {0.12837917f,   -0.37612623f,    0.1128358f,    -0.026854336f,
                                 0.0051903813f, -0.00080356235f, 7.9576996e-05f};
    constexpr float kLarge[10] = {-1.5568153f,    -0.5290211f,    0.12623931f,    -0.03664631f,
                                  0.010961124f,   -0.0031947433f, 0.00088157086f, -0.0002217094f,
                                  4.1366635e-05f, -2.5306717e-06f};
    const float a = x < 0.0f ? -x : x;
    const float t = a * a;
    const float small = a * polynomial(t, kSmall) + a;
    const float u = ((a < 4.0f ? a : 4.0f) - 2.5f) * 0.6666667f;  // S(u), u = (a - 2.5) / 1.5
    const float large = 1.0f - exp_f32(polynomial(u, kLarge) - (a < 4.0f ? t : 16.0f));
    const float y = a < 1.0f ? small : (a < 4.0f ? large : 1.0f);
    const float signed_y = x < 0.0f ? -y : y;
    return x != x ? x : signed_y;
}

}  // namespace aclip
