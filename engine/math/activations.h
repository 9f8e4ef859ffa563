// activations.h: scalar forward and derivative formulas of the pointwise functions, shared by the
// CPU kernels and (later) the CUDA kernels. T is float or double.
#pragma once
#include <cmath>

#include "engine/math/host_device.h"

namespace aclip {

template <class T>
AC_HD T sigmoid_scalar(T x) {
    return T(1) / (T(1) + ::exp(-x));
}

// Exact GELU: x * Phi(x) with Phi the standard normal CDF.
template <class T>
AC_HD T gelu_scalar(T x) {
    return T(0.5) * x * (T(1) + ::erf(x * T(0.70710678118654752440)));
}

// d/dx [x Phi(x)] = Phi(x) + x phi(x).
template <class T>
AC_HD T gelu_grad_scalar(T x) {
    T cdf = T(0.5) * (T(1) + ::erf(x * T(0.70710678118654752440)));
    T pdf = ::exp(T(-0.5) * x * x) * T(0.39894228040143267794);
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
