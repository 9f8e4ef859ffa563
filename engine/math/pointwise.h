// pointwise.h: every elementwise formula of the engine, named, shared by the CPU loops (engine/cpu/map.h)
// and the CUDA kernels (engine/cuda/pointwise.cu), so the CPU tests cover the GPU's arithmetic.
// An op computes out = f(x, y; s0, s1) in the compute type C (f32 for bf16 storage): unary ops ignore y,
// s0 and s1 are the op's scalar parameters (the scalar of add_scalar, the bounds of clamp, ...).
// Comparison ops write 1 or 0 into a u8 mask. The X-macro list is the single place ops are named: the
// enum, the names in error messages and the CUDA kernel registry are all generated from it.
#pragma once
#include <math.h>

#include <cstdint>

#include "engine/math/activations.h"
#include "engine/math/host_device.h"

namespace aclip {

// X(Enum, "name in messages"); the unary ops first, then those of two operands.
// clang-format off
#define AC_POINTWISE_UNARY_OPS(X) \
    X(Neg, "neg") \
    X(Exp, "exp") \
    X(Log, "log") \
    X(Sqrt, "sqrt") \
    X(Rsqrt, "rsqrt") \
    X(Abs, "abs") \
    X(Relu, "relu") \
    X(Gelu, "gelu") \
    X(QuickGelu, "quick_gelu") \
    X(Sigmoid, "sigmoid") \
    X(Tanh, "tanh") \
    X(AddScalar, "add_scalar") \
    X(MulScalar, "mul_scalar") \
    X(PowScalar, "pow_scalar") \
    X(Clamp, "clamp") \
    X(ExpScale, "exp_scale")
#define AC_POINTWISE_BINARY_OPS(X) \
    X(Add, "add") \
    X(Sub, "sub") \
    X(Mul, "mul") \
    X(Div, "div") \
    X(Axpy, "axpy") \
    X(Maximum, "maximum") \
    X(MaximumMask, "maximum_mask") \
    X(Greater, "greater") \
    X(Equal, "equal") \
    X(NegMul, "neg_mul") \
    X(DivBySquare, "div_by_square") \
    X(ExpBackward, "exp_backward") \
    X(LogBackward, "log_backward") \
    X(SqrtBackward, "sqrt_backward") \
    X(RsqrtBackward, "rsqrt_backward") \
    X(AbsBackward, "abs_backward") \
    X(ReluBackward, "relu_backward") \
    X(GeluBackward, "gelu_backward") \
    X(QuickGeluBackward, "quick_gelu_backward") \
    X(SigmoidBackward, "sigmoid_backward") \
    X(TanhBackward, "tanh_backward") \
    X(PowBackward, "pow_backward") \
    X(ClampBackward, "clamp_backward")
#define AC_POINTWISE_OPS(X) AC_POINTWISE_UNARY_OPS(X) AC_POINTWISE_BINARY_OPS(X)
// clang-format on

enum class PW : uint8_t {
#define AC_PW_ENUM(id, name) id,
    AC_POINTWISE_OPS(AC_PW_ENUM)
#undef AC_PW_ENUM
};

inline const char* pointwise_name(PW op) {
    switch (op) {
#define AC_PW_NAME(id, name) \
    case PW::id:             \
        return name;
        AC_POINTWISE_OPS(AC_PW_NAME)
#undef AC_PW_NAME
    }
    return "?";
}

// Unary ops read x alone (and their scalars); y is ignored.
constexpr bool pointwise_is_unary(PW op) {
#define AC_PW_IS(id, name) op == PW::id ||
    return AC_POINTWISE_UNARY_OPS(AC_PW_IS) false;
#undef AC_PW_IS
}

constexpr bool pointwise_writes_mask(PW op) {
    return op == PW::MaximumMask || op == PW::Greater || op == PW::Equal;
}

// Formulas that also take an f32 operand with a bf16 one (computing and writing f32): add and sub, where
// autocast meets the residual stream. Their backward needs neither operand, so the bf16 one is never
// widened in memory; other mixed ops cast it first (engine/ops/autocast.h).
constexpr bool pointwise_takes_mixed(PW op) {
    return op == PW::Add || op == PW::Sub;
}

// Overloads that pick the float or double C function on host and device alike (qualified: the ops of
// ops.h, such as exp(const Tensor&), must not hide them wherever ops.h came first).
AC_HD float pw_exp(float x) {
    return expf(x);
}
AC_HD double pw_exp(double x) {
    return ::exp(x);
}
AC_HD float pw_log(float x) {
    return logf(x);
}
AC_HD double pw_log(double x) {
    return ::log(x);
}
AC_HD float pw_sqrt(float x) {
    return sqrtf(x);
}
AC_HD double pw_sqrt(double x) {
    return ::sqrt(x);
}
AC_HD float pw_tanh(float x) {
    return tanhf(x);
}
AC_HD double pw_tanh(double x) {
    return ::tanh(x);
}
AC_HD float pw_pow(float x, float p) {
    return powf(x, p);
}
AC_HD double pw_pow(double x, double p) {
    return ::pow(x, p);
}

// The formula of op. x: the first operand (the incoming gradient g for *Backward ops); y: the second
// (for *Backward ops, the saved input or output the derivative is a function of).
template <PW op, class C>
AC_HD C pointwise_apply(C x, C y, C s0, C s1) {
    if constexpr (op == PW::Neg) return -x;
    if constexpr (op == PW::Exp) return pw_exp(x);
    if constexpr (op == PW::Log) return pw_log(x);
    if constexpr (op == PW::Sqrt) return pw_sqrt(x);
    if constexpr (op == PW::Rsqrt) return C(1) / pw_sqrt(x);
    if constexpr (op == PW::Abs) return x < C(0) ? -x : x;
    if constexpr (op == PW::Relu) return x > C(0) ? x : C(0);
    if constexpr (op == PW::Gelu) return gelu_scalar(x);
    if constexpr (op == PW::QuickGelu) return quick_gelu_scalar(x);
    if constexpr (op == PW::Sigmoid) return sigmoid_scalar(x);
    if constexpr (op == PW::Tanh) return pw_tanh(x);
    if constexpr (op == PW::AddScalar) return x + s0;
    if constexpr (op == PW::MulScalar) return x * s0;
    if constexpr (op == PW::PowScalar) return pw_pow(x, s0);
    if constexpr (op == PW::Clamp) return x < s0 ? s0 : (x > s1 ? s1 : x);
    if constexpr (op == PW::ExpScale) return pw_exp(x) * s0;  // softmax from log-probabilities
    if constexpr (op == PW::Add) return x + y;
    if constexpr (op == PW::Sub) return x - y;
    if constexpr (op == PW::Mul) return x * y;
    if constexpr (op == PW::Div) return x / y;
    if constexpr (op == PW::Axpy) return x + s0 * y;
    if constexpr (op == PW::Maximum) return x >= y ? x : y;
    if constexpr (op == PW::MaximumMask) return C(x >= y ? 1 : 0);
    if constexpr (op == PW::Greater) return C(x > y ? 1 : 0);
    if constexpr (op == PW::Equal) return C(x == y ? 1 : 0);
    if constexpr (op == PW::NegMul) return -x * y;
    if constexpr (op == PW::DivBySquare) return x / (y * y);
    // Backward ops: g * f'(v), with v the saved input x or output y of the forward op.
    if constexpr (op == PW::ExpBackward) return x * y;                        // v = output
    if constexpr (op == PW::LogBackward) return x / y;                        // v = input
    if constexpr (op == PW::SqrtBackward) return x * (C(0.5) / y);            // v = output
    if constexpr (op == PW::RsqrtBackward) return x * (C(-0.5) * y * y * y);  // v = output
    if constexpr (op == PW::AbsBackward) return x * C(y > C(0) ? 1 : (y < C(0) ? -1 : 0));
    if constexpr (op == PW::ReluBackward) return x * C(y > C(0) ? 1 : 0);
    if constexpr (op == PW::GeluBackward) return x * gelu_grad_scalar(y);
    if constexpr (op == PW::QuickGeluBackward) return x * quick_gelu_grad_scalar(y);
    if constexpr (op == PW::SigmoidBackward) return x * (y * (C(1) - y));  // v = output
    if constexpr (op == PW::TanhBackward) return x * (C(1) - y * y);       // v = output
    if constexpr (op == PW::PowBackward) return x * s0 * pw_pow(y, s0 - C(1));
    if constexpr (op == PW::ClampBackward) return (y >= s0 && y <= s1) ? x : C(0);
    return C(0);
}

}  // namespace aclip
