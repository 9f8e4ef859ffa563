// softmax.cpp: softmax and log_softmax over one dim (fused, numerically stable: the row max is
// subtracted first), and cross_entropy, the fused log-softmax + negative log-likelihood over classes.
#include <cmath>
#include <limits>
#include <type_traits>

#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/cpu/lane_sum.h"
#include "engine/cpu/map.h"
#include "engine/cpu/strided_loop.h"
#include "engine/cuda/cuda_ops.h"
#include "engine/math/fast_exp.h"
#include "engine/ops/autocast.h"
#include "engine/ops/ops.h"

namespace aclip {

namespace {

// e^x in the compute type: the vectorisable polynomial for f32, the C library for f64.
inline float exp_c(float x) {
    return exp_f32(x);
}
inline double exp_c(double x) {
    return std::exp(x);
}

// y = softmax (log = false) or log_softmax (log = true) of each row of x (R, D).
template <class T>
void softmax_rows(const T* x, T* y, int64_t R, int64_t D, bool log) {
    using C = compute_t<T>;
    parallel_for(R, D * 4, [&](int64_t r) {
        const T* xr = x + r * D;
        T* yr = y + r * D;
        C m = -std::numeric_limits<C>::infinity();
#pragma omp simd reduction(max : m)
        for (int64_t i = 0; i < D; ++i) m = std::max(m, load(xr[i]));
        if (m == -std::numeric_limits<C>::infinity()) m = 0;  // a fully masked row: exp(-inf) = 0 below
        if constexpr (std::is_same_v<T, C>) {                 // each exponential once, kept in y, then scaled
            if (!log) {
                const C inv = C(1) / lane_sum<C>(D, [&](int64_t i) { return yr[i] = exp_c(xr[i] - m); });
#pragma omp simd
                for (int64_t i = 0; i < D; ++i) yr[i] *= inv;
                return;
            }
        }
        const C s = lane_sum<C>(D, [&](int64_t i) { return exp_c(load(xr[i]) - m); });
        if (log) {
            C lse = m + std::log(s);
            for (int64_t i = 0; i < D; ++i) yr[i] = store_as<T>(load(xr[i]) - lse);
        } else {  // bf16: y cannot hold an unrounded exponential
            C inv = C(1) / s;
#pragma omp simd
            for (int64_t i = 0; i < D; ++i) yr[i] = store_as<T>(exp_c(load(xr[i]) - m) * inv);
        }
    });
}

// Backward over rows: softmax: dx = y * (g - sum(g y)); log_softmax: dx = g - exp(y) * sum(g).
template <class T>
void softmax_backward_rows(const T* g, const T* y, T* dx, int64_t R, int64_t D, bool log) {
    using C = compute_t<T>;
    parallel_for(R, D * 2, [&](int64_t r) {
        const T* gr = g + r * D;
        const T* yr = y + r * D;
        T* dr = dx + r * D;
        if (log) {
            const C sc = lane_sum<C>(D, [&](int64_t i) { return load(gr[i]); });
            for (int64_t i = 0; i < D; ++i) dr[i] = store_as<T>(load(gr[i]) - exp_c(load(yr[i])) * sc);
        } else {
            const C sc = lane_sum<C>(D, [&](int64_t i) { return load(gr[i]) * load(yr[i]); });
#pragma omp simd
            for (int64_t i = 0; i < D; ++i) dr[i] = store_as<T>(load(yr[i]) * (load(gr[i]) - sc));
        }
    });
}

// dx of (log_)softmax over the last dim from its contiguous output y and the output's gradient g.
Tensor softmax_backward_impl(const Tensor& y, const Tensor& g, bool log, const char* op) {
    const int64_t D = y.dim() ? y.size(-1) : 1, R = y.numel() / std::max<int64_t>(D, 1);
    const Tensor gc = g.contiguous();
    Tensor dx = empty(y.shape(), y.dtype(), y.device());
    if (y.device() == Device::CUDA) {
        cuda::softmax_backward_rows(gc, y, dx, log);
    } else {
        dispatch_float(y.dtype(), op, [&](auto tag) {
            using T = typename decltype(tag)::type;
            softmax_backward_rows<T>(gc.data<T>(), y.data<T>(), dx.data<T>(), R, D, log);
        });
    }
    return dx;
}

Tensor softmax_impl(const Tensor& x, int64_t dim, bool log, const char* op) {
    dim = wrap_dim(dim, std::max<int64_t>(x.dim(), 1), op);
    if (x.dim() > 0 && dim != x.dim() - 1)  // move the dim last, and back
        return softmax_impl(x.transpose(dim, -1), -1, log, op).transpose(dim, -1);
    const int64_t D = x.dim() ? x.size(-1) : 1, R = x.numel() / std::max<int64_t>(D, 1);
    Tensor xc = x.contiguous();
    Tensor y = empty(x.shape(), x.dtype(), x.device());
    if (x.device() == Device::CUDA) {
        cuda::softmax_rows(xc, y, log);
    } else {
        dispatch_float(x.dtype(), op, [&](auto tag) {
            using T = typename decltype(tag)::type;
            softmax_rows<T>(xc.data<T>(), y.data<T>(), R, D, log);
        });
    }
    if (!needs_grad({x})) return y;
    SavedTensor sy(y, op);
    return record(op, y, {x}, [sy, log, op](const Tensor& g) {
        return std::vector<Tensor>{softmax_backward_impl(sy.get(), g, log, op)};
    });
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) {
    return softmax_impl(x, dim, false, "softmax");
}
Tensor log_softmax(const Tensor& x, int64_t dim) {
    return softmax_impl(x, dim, true, "log_softmax");
}
Tensor softmax_backward(const Tensor& y, const Tensor& g) {
    common_device("softmax_backward", {&y, &g});
    AC_CHECK(y.shape() == g.shape() && y.dtype() == g.dtype(), "softmax_backward: y ", y.desc(),
             " and its gradient ", g.desc(), " must have one shape and dtype");
    return softmax_backward_impl(y.contiguous(), g, false, "softmax_backward");
}

Tensor cross_entropy(const Tensor& logits_in, const Tensor& target) {
    const Tensor logits = autocast_to_f32(logits_in);  // losses in f32 under autocast
    const Device device = common_device("cross_entropy", {&logits, &target});
    AC_CHECK(logits.dim() == 2, "cross_entropy: logits must be (N, C), got ", logits.desc());
    AC_CHECK(target.dim() == 1 && target.size(0) == logits.size(0) && is_integral(target.dtype()),
             "cross_entropy: target must be an integer (N) tensor matching ", logits.desc(), ", got ",
             target.desc());
    const int64_t N = logits.size(0), C = logits.size(1);
    std::vector<int64_t> t;  // the CPU's targets, checked here; the GPU's kernel checks its own
    if (device == Device::CPU) {
        t = target.to_vector<int64_t>();
        for (int64_t i = 0; i < N; ++i)
            AC_CHECK(t[i] >= 0 && t[i] < C, "cross_entropy: target[", i, "] = ", t[i], " is outside [0, ", C,
                     ")");
    }
    Tensor target64 = target.to(DType::I64).contiguous();
    Tensor logp;  // (N, C) log-probabilities, kept for backward
    {
        NoGradGuard no_grad;
        logp = log_softmax(logits, -1);
    }
    Tensor out = empty({}, logits.dtype(), device);
    if (device == Device::CUDA) {
        cuda::nll_sum(logp, target64, out);
        out = mul_scalar(out, N ? 1.0 / N : 0.0);
    } else {
        double loss = 0;
        dispatch_float(logits.dtype(), "cross_entropy", [&](auto tag) {
            using T = typename decltype(tag)::type;
            const T* lp = logp.data<T>();
            for (int64_t i = 0; i < N; ++i) loss -= load(lp[i * C + t[i]]);
        });
        out.fill_(N ? loss / N : 0.0);
    }
    if (!needs_grad({logits})) return out;
    return record("cross_entropy", out, {logits, Tensor()}, [logp, target64, t, N, C](const Tensor& g) {
        // d loss / d logits = (softmax - onehot(target)) * g / N; the GPU reads g where it is
        if (logp.device() == Device::CUDA) {
            Tensor dx = empty(logp.shape(), logp.dtype(), Device::CUDA);
            cuda::cross_entropy_backward(logp, target64, g.to(Device::CUDA).to(logp.dtype()).contiguous(),
                                         dx);
            return std::vector<Tensor>{dx, Tensor()};
        }
        const double scale = g.item() / static_cast<double>(N);
        Tensor dx = map1<PW::ExpScale>(logp, scale);
        dispatch_float(dx.dtype(), "cross_entropy_backward", [&](auto tag) {
            using T = typename decltype(tag)::type;
            T* d = dx.data<T>();
            for (int64_t i = 0; i < N; ++i) d[i * C + t[i]] = store_as<T>(load(d[i * C + t[i]]) - scale);
        });
        return std::vector<Tensor>{dx, Tensor()};
    });
}

}  // namespace aclip
