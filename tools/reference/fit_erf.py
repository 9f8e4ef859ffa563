#!/usr/bin/env python3
"""fit_erf.py: the polynomial coefficients of engine/math/fast_erf.h's erf_f32, and their error in f32.

erf_f32 splits at |x| = 1:
- |x| < 1: erf(x) = x + x R(x^2), R(t) = erf(sqrt t) / sqrt t - 1 fitted on [0, 1] with relative weights;
  adding x last keeps the rounding of the larger term exact in its leading part.
- 1 <= |x| < 4: erf(x) = 1 - exp(-x^2 + S((|x| - 2.5) / 1.5)), S(a) = log(erfc(a)) + a^2 = log(erfcx(a)),
  a slowly varying function; exp is exp_f32 (fast_exp.h). The f32 code multiplies by 2/3 rounded to f32
  instead of dividing by 1.5 (a relative change of 1e-8 in S's argument, 5e-8 in erfc at most).
- |x| >= 4: erfc is below half an ulp of 1, so erf rounds to +-1.
Fits are least squares on Chebyshev points in double against Python's math.erf / math.erfc; the script
then evaluates the f32 formula (coefficients rounded to f32, every operation rounded to f32, numpy's exp
for exp_f32) on a dense grid and prints the largest error in ulps of the true value.
Run: /usr/bin/python3 tools/reference/fit_erf.py   (Debian's python3-numpy)
"""
import math

import numpy as np
from numpy.polynomial import polynomial

SMALL_DEGREE = 6
LARGE_DEGREE = 9
LARGE_CENTER, LARGE_SCALE = 2.5, 1.5


def chebyshev_points(lo, hi, n=4000):
    k = np.arange(n)
    return (lo + hi) / 2 + (hi - lo) / 2 * np.cos(np.pi * (k + 0.5) / n)


def fit_small():
    t = chebyshev_points(0.0, 1.0)
    y = np.array([math.erf(math.sqrt(v)) / math.sqrt(v) - 1.0 for v in t])
    return polynomial.polyfit(t, y, SMALL_DEGREE, w=1.0 / np.abs(y))


def fit_large():
    a = chebyshev_points(1.0, 4.0)
    y = np.array([math.log(math.erfc(v)) + v * v for v in a])
    return polynomial.polyfit((a - LARGE_CENTER) / LARGE_SCALE, y, LARGE_DEGREE)


def horner_f32(coefficients, u):
    r = np.float32(coefficients[-1])
    for c in coefficients[-2::-1]:
        r = np.float32(np.float32(r * u) + np.float32(c))
    return r


def erf_f32(x, small, large):
    f = np.float32
    a = f(abs(x))
    if a < 1:
        r = horner_f32(small, f(a * a))
        y = f(f(a * r) + a)
    elif a < 4:
        u = f(f(a - f(LARGE_CENTER)) * f(1 / LARGE_SCALE))
        q = f(f(-(a * a)) + horner_f32(large, u))
        y = f(f(1) - f(np.exp(q)))
    else:
        y = f(1)
    return y if x >= 0 else -y


def main():
    small, large = fit_small(), fit_large()
    worst = 0.0
    for x in np.linspace(-4.5, 4.5, 90001, dtype=np.float32):
        exact = math.erf(float(x))
        if exact == 0.0:
            continue
        ulp = float(np.spacing(np.float32(abs(exact))))
        worst = max(worst, abs(float(erf_f32(x, small, large)) - exact) / ulp)
    print(f"// |x| < 1: R(t), t = x^2, degree {SMALL_DEGREE}")
    print(", ".join(f"{np.float32(c)!r}f" for c in small))
    print(f"// 1 <= |x| < 4: S(u), u = (|x| - {LARGE_CENTER}) / {LARGE_SCALE}, degree {LARGE_DEGREE}")
    print(", ".join(f"{np.float32(c)!r}f" for c in large))
    print(f"// largest error on [-4.5, 4.5] in f32 (numpy's exp): {worst:.2f} ulp")


if __name__ == "__main__":
    main()
