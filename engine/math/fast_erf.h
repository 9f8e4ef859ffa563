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

AC_HD float erf_f32(float x) {
    const float a = x < 0.0f ? -x : x;
    const float t = a * a;
    float r = 7.9576996e-05f;  // R(t)
    r = r * t - 0.00080356235f;
    r = r * t + 0.0051903813f;
    r = r * t - 0.026854336f;
    r = r * t + 0.1128358f;
    r = r * t - 0.37612623f;
    r = r * t + 0.12837917f;
    const float small = a * r + a;
    const float u = ((a < 4.0f ? a : 4.0f) - 2.5f) * 0.6666667f;  // S(u), u = (a - 2.5) / 1.5
    float s = -2.5306717e-06f;
    s = s * u + 4.1366635e-05f;
    s = s * u - 0.0002217094f;
    s = s * u + 0.00088157086f;
    s = s * u - 0.0031947433f;
    s = s * u + 0.010961124f;
    s = s * u - 0.03664631f;
    s = s * u + 0.12623931f;
    s = s * u - 0.5290211f;
    s = s * u - 1.5568153f;
    const float large = 1.0f - exp_f32(s - (a < 4.0f ? t : 16.0f));
    const float y = a < 1.0f ? small : (a < 4.0f ? large : 1.0f);
    const float signed_y = x < 0.0f ? -y : y;
    return x != x ? x : signed_y;
}

}  // namespace aclip
