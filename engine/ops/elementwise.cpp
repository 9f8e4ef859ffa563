// elementwise.cpp: pointwise ops with broadcasting and their backward rules.
// Forward and backward are both single passes of map1/map2 (engine/cpu/map.h); broadcasting is undone
// in backward by sum_to_shape.
#include <cmath>

#include "engine/autograd/node.h"
#include "engine/cpu/map.h"
#include "engine/math/activations.h"
#include "engine/ops/ops.h"

namespace aclip {

namespace {
using Grads = std::vector<Tensor>;
}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
    Tensor out = map2("add", a, b, [](auto x, auto y) { return x + y; });
    Shape sa = a.shape(), sb = b.shape();
    bool ra = a.requires_grad(), rb = b.requires_grad();
    return record("add", out, {a, b}, [=](const Tensor& g) {
        return Grads{ra ? sum_to_shape(g, sa) : Tensor(), rb ? sum_to_shape(g, sb) : Tensor()};
    });
}

Tensor sub(const Tensor& a, const Tensor& b) {
    Tensor out = map2("sub", a, b, [](auto x, auto y) { return x - y; });
    Shape sa = a.shape(), sb = b.shape();
    bool ra = a.requires_grad(), rb = b.requires_grad();
    return record("sub", out, {a, b}, [=](const Tensor& g) {
        return Grads{ra ? sum_to_shape(g, sa) : Tensor(), rb ? sum_to_shape(neg(g), sb) : Tensor()};
    });
}

Tensor mul(const Tensor& a, const Tensor& b) {
    Tensor out = map2("mul", a, b, [](auto x, auto y) { return x * y; });
    if (!needs_grad({a, b})) return out;
    SavedTensor sa(a, "mul"), sb(b, "mul");
    bool ra = a.requires_grad(), rb = b.requires_grad();
    return record("mul", out, {a, b}, [=](const Tensor& g) {
        const Tensor &x = sa.get(), &y = sb.get();
        return Grads{ra ? sum_to_shape(mul(g, y), x.shape()) : Tensor(),
                     rb ? sum_to_shape(mul(g, x), y.shape()) : Tensor()};
    });
}

Tensor div(const Tensor& a, const Tensor& b) {
    Tensor out = map2("div", a, b, [](auto x, auto y) { return x / y; });
    if (!needs_grad({a, b})) return out;
    SavedTensor sa(a, "div"), sb(b, "div");
    bool ra = a.requires_grad(), rb = b.requires_grad();
    return record("div", out, {a, b}, [=](const Tensor& g) {
        const Tensor &x = sa.get(), &y = sb.get();
        Tensor gy;
        if (rb) {  // d(x/y)/dy = -x / y^2
            Tensor t = map2("div_backward", g, x, [](auto gv, auto xv) { return -gv * xv; });
            gy = sum_to_shape(map2("div_backward", t, y, [](auto tv, auto yv) { return tv / (yv * yv); }),
                              y.shape());
        }
        return Grads{ra ? sum_to_shape(div(g, y), x.shape()) : Tensor(), gy};
    });
}

Tensor maximum(const Tensor& a, const Tensor& b) {
    Tensor out = map2("maximum", a, b, [](auto x, auto y) { return x >= y ? x : y; });
    if (!needs_grad({a, b})) return out;
    Tensor a_wins = map2(
        "maximum", a, b, [](auto x, auto y) { return x >= y ? 1 : 0; }, DType::U8);
    Shape sa = a.shape(), sb = b.shape();
    bool ra = a.requires_grad(), rb = b.requires_grad();
    return record("maximum", out, {a, b}, [=](const Tensor& g) {
        Tensor zero = zeros({}, g.dtype());
        return Grads{ra ? sum_to_shape(where(a_wins, g, zero), sa) : Tensor(),
                     rb ? sum_to_shape(where(a_wins, zero, g), sb) : Tensor()};
    });
}

Tensor add_scalar(const Tensor& a, double s) {
    Tensor out = map1("add_scalar", a, [s](auto x) { return x + static_cast<decltype(x)>(s); });
    return record("add_scalar", out, {a}, [](const Tensor& g) { return Grads{g}; });
}

Tensor mul_scalar(const Tensor& a, double s) {
    Tensor out = map1("mul_scalar", a, [s](auto x) { return x * static_cast<decltype(x)>(s); });
    return record("mul_scalar", out, {a}, [s](const Tensor& g) { return Grads{mul_scalar(g, s)}; });
}

Tensor neg(const Tensor& a) {
    Tensor out = map1("neg", a, [](auto x) { return -x; });
    return record("neg", out, {a}, [](const Tensor& g) { return Grads{neg(g)}; });
}

namespace {

// A unary op whose derivative is a function of its input x (or of its output y, which saves
// recomputing exp, sigmoid, tanh): grad_in = g * deriv(saved).
enum class DerivOf { Input, Output };

template <class Fwd, class Deriv>
Tensor unary_op(const char* name, const char* backward_name, const Tensor& a, DerivOf of, Fwd fwd,
                Deriv deriv) {
    Tensor out = map1(name, a, fwd);
    if (!needs_grad({a})) return out;
    SavedTensor saved(of == DerivOf::Input ? a : out, name);
    return record(name, out, {a}, [saved, deriv, backward_name](const Tensor& g) {
        return Grads{map2(backward_name, g, saved.get(), [deriv](auto gv, auto v) { return gv * deriv(v); })};
    });
}

template <class C>
C sign_of(C x) {
    return x > 0 ? C(1) : (x < 0 ? C(-1) : C(0));
}

}  // namespace

Tensor exp(const Tensor& a) {
    return unary_op(
        "exp", "exp_backward", a, DerivOf::Output, [](auto x) { return std::exp(x); },
        [](auto y) { return y; });
}
Tensor log(const Tensor& a) {
    return unary_op(
        "log", "log_backward", a, DerivOf::Input, [](auto x) { return std::log(x); },
        [](auto x) { return 1 / x; });
}
Tensor sqrt(const Tensor& a) {
    return unary_op(
        "sqrt", "sqrt_backward", a, DerivOf::Output, [](auto x) { return std::sqrt(x); },
        [](auto y) { return decltype(y)(0.5) / y; });
}
Tensor rsqrt(const Tensor& a) {
    return unary_op(
        "rsqrt", "rsqrt_backward", a, DerivOf::Output, [](auto x) { return 1 / std::sqrt(x); },
        [](auto y) { return decltype(y)(-0.5) * y * y * y; });
}
Tensor abs(const Tensor& a) {
    return unary_op(
        "abs", "abs_backward", a, DerivOf::Input, [](auto x) { return std::abs(x); },
        [](auto x) { return sign_of(x); });
}
Tensor relu(const Tensor& a) {
    return unary_op(
        "relu", "relu_backward", a, DerivOf::Input, [](auto x) { return x > 0 ? x : decltype(x)(0); },
        [](auto x) { return decltype(x)(x > 0 ? 1 : 0); });
}
Tensor gelu(const Tensor& a) {
    return unary_op(
        "gelu", "gelu_backward", a, DerivOf::Input, [](auto x) { return gelu_scalar(x); },
        [](auto x) { return gelu_grad_scalar(x); });
}
Tensor quick_gelu(const Tensor& a) {
    return unary_op(
        "quick_gelu", "quick_gelu_backward", a, DerivOf::Input, [](auto x) { return quick_gelu_scalar(x); },
        [](auto x) { return quick_gelu_grad_scalar(x); });
}
Tensor sigmoid(const Tensor& a) {
    return unary_op(
        "sigmoid", "sigmoid_backward", a, DerivOf::Output, [](auto x) { return sigmoid_scalar(x); },
        [](auto y) { return y * (1 - y); });
}
Tensor tanh(const Tensor& a) {
    return unary_op(
        "tanh", "tanh_backward", a, DerivOf::Output, [](auto x) { return std::tanh(x); },
        [](auto y) { return 1 - y * y; });
}

Tensor pow_scalar(const Tensor& a, double p) {
    Tensor out = map1("pow_scalar", a, [p](auto x) { return std::pow(x, static_cast<decltype(x)>(p)); });
    if (!needs_grad({a})) return out;
    SavedTensor sx(a, "pow_scalar");
    return record("pow_scalar", out, {a}, [sx, p](const Tensor& g) {
        return Grads{map2("pow_scalar_backward", g, sx.get(), [p](auto gv, auto x) {
            using C = decltype(x);
            return gv * static_cast<C>(p) * std::pow(x, static_cast<C>(p - 1));
        })};
    });
}

Tensor clamp(const Tensor& a, std::optional<double> lo, std::optional<double> hi) {
    double l = lo.value_or(-INFINITY), h = hi.value_or(INFINITY);
    AC_CHECK(l <= h, "clamp: min ", l, " is greater than max ", h);
    Tensor out = map1("clamp", a, [l, h](auto x) {
        using C = decltype(x);
        return x < C(l) ? C(l) : (x > C(h) ? C(h) : x);
    });
    if (!needs_grad({a})) return out;
    SavedTensor sx(a, "clamp");
    return record("clamp", out, {a}, [sx, l, h](const Tensor& g) {  // passes where l <= x <= h
        return Grads{map2("clamp_backward", g, sx.get(), [l, h](auto gv, auto x) {
            using C = decltype(x);
            return (x >= C(l) && x <= C(h)) ? gv : C(0);
        })};
    });
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
    Tensor out = map_masked("where", cond, a, b, [](bool c, auto x, auto y) { return c ? x : y; });
    if (!needs_grad({a, b})) return out;
    Shape sa = a.shape(), sb = b.shape();
    bool ra = a.requires_grad(), rb = b.requires_grad();
    return record("where", out, {Tensor(), a, b}, [=](const Tensor& g) {
        Tensor zero = zeros({}, g.dtype());
        return Grads{Tensor(), ra ? sum_to_shape(where(cond, g, zero), sa) : Tensor(),
                     rb ? sum_to_shape(where(cond, zero, g), sb) : Tensor()};
    });
}

Tensor masked_fill(const Tensor& a, const Tensor& mask, double value) {
    AC_CHECK(broadcast_shapes(a.shape(), mask.shape(), "masked_fill") == a.shape(), "masked_fill: mask ",
             mask.desc(), " does not broadcast to ", a.desc());
    Tensor fill = full({}, value, a.dtype());
    Tensor out = map_masked("masked_fill", mask, fill, a, [](bool m, auto v, auto x) { return m ? v : x; });
    return record("masked_fill", out, {a},
                  [mask](const Tensor& g) { return Grads{where(mask, zeros({}, g.dtype()), g)}; });
}

Tensor cast(const Tensor& a, DType dtype) {
    return a.to(dtype);
}

Tensor greater(const Tensor& a, const Tensor& b) {
    return map2(
        "greater", a, b, [](auto x, auto y) { return x > y ? 1 : 0; }, DType::U8);
}

Tensor equal(const Tensor& a, const Tensor& b) {
    return map2(
        "equal", a, b, [](auto x, auto y) { return x == y ? 1 : 0; }, DType::U8);
}

}  // namespace aclip
