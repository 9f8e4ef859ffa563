// activations.h: scalar forward and derivative formulas of the pointwise functions, shared by the
// CPU kernels and the CUDA kernels. T is float or double.
#pragma once
#include <cmath>
#include <type_traits>

#include "engine/math/fast_erf.h"
#include "engine/math/host_device.h"

namespace aclip {

// erf and exp of the GELU formulas. f32 on the CPU: erf_f32 and exp_f32 (fast_erf.h, fast_exp.h; about
// 1 ulp), plain arithmetic that the compiler vectorises, where the C library's calls are opaque and
// scalar. On the GPU: CUDA's erff and expf, cheaper there than the polynomials. f64: the C library's.
template <class T>
AC_HD T gelu_erf(T x) {
#if !defined(__CUDA_ARCH__)
    if constexpr (std::is_same_v<T, float>) return erf_f32(x);
#endif
    return ::erf(x);
}
template <class T>
AC_HD T gelu_exp(T x) {
#if !defined(__CUDA_ARCH__)
    if constexpr (std::is_same_v<T, float>) return exp_f32(x);
#endif
    return ::exp(x);
}

template <class T>
AC_HD T sigmoid_scalar(T x) {
    return T(1) / (T(1) + ::exp(-x));
}

// Exact GELU: x * Phi(x) with Phi the standard normal CDF.
template <class T>
AC_HD T gelu_scalar(T x) {
    return T(0.5) * x * (T(1) + gelu_erf(x * T(0.70710678118654752440)));
}

// d/dx [x Phi(x)] = Phi(x) + x phi(x).
template <class T>
AC_HD T gelu_grad_scalar(T x) {
    T cdf = T(0.5) * (T(1) + gelu_erf(x * T(0.70710678118654752440)));
    T pdf = gelu_exp(T(-0.5) * x * x) * T(0.39894228040143267794);
    return cdf + x * pdf;
}

// QuickGELU (OpenAI CLIP): x * sigmoid(1.702 x).
template <class T>
AC_HD T quick_gelu_scalar(T x) {
    return x * sigmoid_scalar(T(1.702) * x);
}

template <class T>
AC_HD T quick_gelu_grad_scalar(T x) {
    T s = sigmoid_scalar(T(1.702) * x);
    return s + x * T(1.702) * s * (T(1) - s);
}

}  // namespace aclip
