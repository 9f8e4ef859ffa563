// elementwise.cpp: pointwise ops with broadcasting and their backward rules.
// Forward and backward are each one pass of a named pointwise formula (engine/cpu/map.h, which runs it on
// the CPU or the GPU); broadcasting is undone in backward by sum_to_shape.
#include <cmath>

#include "engine/autograd/node.h"
#include "engine/cpu/map.h"
#include "engine/math/activations.h"
#include "engine/ops/autocast.h"
#include "engine/ops/ops.h"

namespace aclip {

namespace {
using Grads = std::vector<Tensor>;
}  // namespace

// add and sub take f32 with bf16 as they are under autocast: the residual stream meets each bf16 block
// output without widening it in memory first. Their backward needs neither operand; autograd casts each
// gradient to its input's dtype.
Tensor add(const Tensor& a_in, const Tensor& b_in) {
    auto [a, b] = autocast_promote(a_in, b_in, pointwise_takes_mixed(PW::Add));
    Tensor out = map_pointwise<PW::Add>(a, b);
    Shape sa = a.shape(), sb = b.shape();
    bool ra = a.requires_grad(), rb = b.requires_grad();
    return record("add", out, {a, b}, [=](const Tensor& g) {
        return Grads{ra ? sum_to_shape(g, sa) : Tensor(), rb ? sum_to_shape(g, sb) : Tensor()};
    });
}

Tensor sub(const Tensor& a_in, const Tensor& b_in) {
    auto [a, b] = autocast_promote(a_in, b_in, pointwise_takes_mixed(PW::Sub));
    Tensor out = map_pointwise<PW::Sub>(a, b);
    Shape sa = a.shape(), sb = b.shape();
    bool ra = a.requires_grad(), rb = b.requires_grad();
    return record("sub", out, {a, b}, [=](const Tensor& g) {
        return Grads{ra ? sum_to_shape(g, sa) : Tensor(), rb ? sum_to_shape(neg(g), sb) : Tensor()};
    });
}

Tensor mul(const Tensor& a_in, const Tensor& b_in) {
    auto [a, b] = autocast_promote(a_in, b_in);
    Tensor out = map_pointwise<PW::Mul>(a, b);
    if (!needs_grad({a, b})) return out;
    SavedTensor sa(a, "mul"), sb(b, "mul");
    bool ra = a.requires_grad(), rb = b.requires_grad();
    return record("mul", out, {a, b}, [=](const Tensor& g) {
        const Tensor &x = sa.get(), &y = sb.get();
        return Grads{ra ? sum_to_shape(mul(g, y), x.shape()) : Tensor(),
                     rb ? sum_to_shape(mul(g, x), y.shape()) : Tensor()};
    });
}

Tensor div(const Tensor& a_in, const Tensor& b_in) {
    auto [a, b] = autocast_promote(a_in, b_in);
    Tensor out = map_pointwise<PW::Div>(a, b);
    if (!needs_grad({a, b})) return out;
    SavedTensor sa(a, "div"), sb(b, "div");
    bool ra = a.requires_grad(), rb = b.requires_grad();
    return record("div", out, {a, b}, [=](const Tensor& g) {
        const Tensor &x = sa.get(), &y = sb.get();
        Tensor gy;
        if (rb)  // d(x/y)/dy = -x / y^2
            gy = sum_to_shape(map_pointwise<PW::DivBySquare>(map_pointwise<PW::NegMul>(g, x), y), y.shape());
        return Grads{ra ? sum_to_shape(div(g, y), x.shape()) : Tensor(), gy};
    });
}

Tensor maximum(const Tensor& a_in, const Tensor& b_in) {
    auto [a, b] = autocast_promote(a_in, b_in);
    Tensor out = map_pointwise<PW::Maximum>(a, b);
    if (!needs_grad({a, b})) return out;
    Tensor a_wins = map_pointwise<PW::MaximumMask>(a, b);
    Shape sa = a.shape(), sb = b.shape();
    bool ra = a.requires_grad(), rb = b.requires_grad();
    return record("maximum", out, {a, b}, [=](const Tensor& g) {
        Tensor zero = zeros({}, g.dtype(), g.device());
        return Grads{ra ? sum_to_shape(where(a_wins, g, zero), sa) : Tensor(),
                     rb ? sum_to_shape(where(a_wins, zero, g), sb) : Tensor()};
    });
}

Tensor add_scalar(const Tensor& a, double s) {
    Tensor out = map1<PW::AddScalar>(a, s);
    return record("add_scalar", out, {a}, [](const Tensor& g) { return Grads{g}; });
}

Tensor mul_scalar(const Tensor& a, double s) {
    Tensor out = map1<PW::MulScalar>(a, s);
    return record("mul_scalar", out, {a}, [s](const Tensor& g) { return Grads{mul_scalar(g, s)}; });
}

Tensor neg(const Tensor& a) {
    Tensor out = map1<PW::Neg>(a);
    return record("neg", out, {a}, [](const Tensor& g) { return Grads{neg(g)}; });
}

namespace {

// A unary op whose derivative is a function of its input x (or of its output y, which saves
// recomputing exp, sigmoid, tanh): grad_in = Backward(g, saved; s0, s1).
enum class DerivOf { Input, Output };

template <PW Forward, PW Backward>
Tensor unary_op(const char* name, const Tensor& a, DerivOf of, double s0 = 0.0, double s1 = 0.0) {
    Tensor out = map1<Forward>(a, s0, s1);
    if (!needs_grad({a})) return out;
    SavedTensor saved(of == DerivOf::Input ? a : out, name);
    return record(name, out, {a}, [saved, s0, s1](const Tensor& g) {
        return Grads{map_pointwise<Backward>(g, saved.get(), s0, s1)};
    });
}

}  // namespace

Tensor exp(const Tensor& a) {
    return unary_op<PW::Exp, PW::ExpBackward>("exp", a, DerivOf::Output);
}
Tensor log(const Tensor& a) {
    return unary_op<PW::Log, PW::LogBackward>("log", a, DerivOf::Input);
}
Tensor sqrt(const Tensor& a) {
    return unary_op<PW::Sqrt, PW::SqrtBackward>("sqrt", a, DerivOf::Output);
}
Tensor rsqrt(const Tensor& a) {
    return unary_op<PW::Rsqrt, PW::RsqrtBackward>("rsqrt", a, DerivOf::Output);
}
Tensor abs(const Tensor& a) {
    return unary_op<PW::Abs, PW::AbsBackward>("abs", a, DerivOf::Input);
}
Tensor relu(const Tensor& a) {
    return unary_op<PW::Relu, PW::ReluBackward>("relu", a, DerivOf::Input);
}
Tensor gelu(const Tensor& a) {
    return unary_op<PW::Gelu, PW::GeluBackward>("gelu", a, DerivOf::Input);
}
Tensor quick_gelu(const Tensor& a) {
    return unary_op<PW::QuickGelu, PW::QuickGeluBackward>("quick_gelu", a, DerivOf::Input);
}
Tensor sigmoid(const Tensor& a) {
    return unary_op<PW::Sigmoid, PW::SigmoidBackward>("sigmoid", a, DerivOf::Output);
}
Tensor tanh(const Tensor& a) {
    return unary_op<PW::Tanh, PW::TanhBackward>("tanh", a, DerivOf::Output);
}
Tensor pow_scalar(const Tensor& a, double p) {
    return unary_op<PW::PowScalar, PW::PowBackward>("pow_scalar", a, DerivOf::Input, p);
}

Tensor clamp(const Tensor& a, std::optional<double> lo, std::optional<double> hi) {
    double l = lo.value_or(-INFINITY), h = hi.value_or(INFINITY);
    AC_CHECK(l <= h, "clamp: min ", l, " is greater than max ", h);
    // The gradient passes where l <= x <= h.
    return unary_op<PW::Clamp, PW::ClampBackward>("clamp", a, DerivOf::Input, l, h);
}

Tensor where(const Tensor& cond, const Tensor& a_in, const Tensor& b_in) {
    auto [a, b] = autocast_promote(a_in, b_in);
    Tensor out = map_where("where", cond, a, b);
    if (!needs_grad({a, b})) return out;
    Shape sa = a.shape(), sb = b.shape();
    bool ra = a.requires_grad(), rb = b.requires_grad();
    return record("where", out, {Tensor(), a, b}, [=](const Tensor& g) {
        Tensor zero = zeros({}, g.dtype(), g.device());
        return Grads{Tensor(), ra ? sum_to_shape(where(cond, g, zero), sa) : Tensor(),
                     rb ? sum_to_shape(where(cond, zero, g), sb) : Tensor()};
    });
}

Tensor masked_fill(const Tensor& a, const Tensor& mask, double value) {
    AC_CHECK(broadcast_shapes(a.shape(), mask.shape(), "masked_fill") == a.shape(), "masked_fill: mask ",
             mask.desc(), " does not broadcast to ", a.desc());
    Tensor fill = full({}, value, a.dtype(), a.device());
    Tensor out = map_where("masked_fill", mask, fill, a);
    return record("masked_fill", out, {a}, [mask](const Tensor& g) {
        return Grads{where(mask, zeros({}, g.dtype(), g.device()), g)};
    });
}

Tensor cast(const Tensor& a, DType dtype) {
    return a.to(dtype);
}

Tensor greater(const Tensor& a, const Tensor& b) {
    return map_pointwise<PW::Greater>(a, b);
}

Tensor equal(const Tensor& a, const Tensor& b) {
    return map_pointwise<PW::Equal>(a, b);
}

}  // namespace aclip
