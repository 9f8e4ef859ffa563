// norm.cpp: layer_norm (fused forward and backward over the last dim) and batch_norm (composed from
// engine ops, so autograd derives its backward; running statistics move outside the graph).
#include <array>
#include <cmath>

#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/cpu/lane_sum.h"
#include "engine/cpu/strided_loop.h"
#include "engine/cuda/cuda_ops.h"
#include "engine/ops/autocast.h"
#include "engine/ops/ops.h"

namespace aclip {

namespace {

// x (R, D) contiguous -> y (R, D), mean (R), rstd (R); w, b (D) may be null. y is T, or bf16 when T is
// f32 (the output rounded as a cast of it would be).
template <class T, class Y>
void layer_norm_rows(const T* x, const T* w, const T* b, Y* y, float* mean_out, float* rstd_out, int64_t R,
                     int64_t D, double eps) {
    using C = compute_t<T>;
    parallel_for(R, D, [&](int64_t r) {
        const T* xr = x + r * D;
        const C m = lane_sum<C>(D, [&](int64_t i) { return load(xr[i]); }) / static_cast<C>(D);
        const C ss = lane_sum<C>(D, [&](int64_t i) {  // two passes: the variance of centred values
            const C centred = load(xr[i]) - m;
            return centred * centred;
        });
        C rs = C(1) / std::sqrt(ss / static_cast<C>(D) + static_cast<C>(eps));
        Y* yr = y + r * D;
#pragma omp simd
        for (int64_t i = 0; i < D; ++i) {
            C v = (load(xr[i]) - m) * rs;
            if (w) v = v * load(w[i]);
            if (b) v = v + load(b[i]);
            yr[i] = store_as<Y>(store_as<T>(v));
        }
        double mu = m, rstd = rs;
        mean_out[r] = static_cast<float>(mu);
        rstd_out[r] = static_cast<float>(rstd);
    });
}

// Backward of layer_norm_rows. dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = g*w;
// with `accumulate`, dx holds a gradient already and each value is added to it.
template <class T>
void layer_norm_backward_rows(const T* g, const T* x, const T* w, const float* mean, const float* rstd, T* dx,
                              bool accumulate, double* dw, double* db, int64_t R, int64_t D) {
    using C = compute_t<T>;
    parallel_for(R, D, [&](int64_t r) {
        const T* gr = g + r * D;
        const T* xr = x + r * D;
        C m = static_cast<C>(mean[r]), rs = static_cast<C>(rstd[r]);
        const auto [sum_dxhat, sum_dxhat_xhat] = lane_sums<C, 2>(D, [&](int64_t i) {
            const C xhat = (load(xr[i]) - m) * rs;
            const C dxhat = load(gr[i]) * (w ? load(w[i]) : C(1));
            return std::array<C, 2>{dxhat, dxhat * xhat};
        });
        C a = sum_dxhat / static_cast<C>(D), c = sum_dxhat_xhat / static_cast<C>(D);
        T* dr = dx + r * D;
#pragma omp simd
        for (int64_t i = 0; i < D; ++i) {
            C xhat = (load(xr[i]) - m) * rs;
            C dxhat = load(gr[i]) * (w ? load(w[i]) : C(1));
            const T v = store_as<T>(rs * (dxhat - a - xhat * c));
            dr[i] = accumulate ? store_as<T>(load(dr[i]) + load(v)) : v;  // as adding dx afterwards would
        }
    });
    if (!dw && !db) return;
    // Parameter gradients: column sums over rows, in row blocks so threads write disjoint partials.
    const int64_t blocks = std::min<int64_t>(R, 16);
    std::vector<double> part_w(dw ? blocks * D : 0, 0.0), part_b(db ? blocks * D : 0, 0.0);
    parallel_for(blocks, (R / blocks + 1) * D, [&](int64_t k) {
        for (int64_t r = k * R / blocks; r < (k + 1) * R / blocks; ++r) {
            const T* gr = g + r * D;
            const T* xr = x + r * D;
            const double m = mean[r], rs = rstd[r];
            if (dw) {
                double* pw = part_w.data() + k * D;
#pragma omp simd
                for (int64_t i = 0; i < D; ++i)
                    pw[i] += static_cast<double>(load(gr[i])) * (load(xr[i]) - m) * rs;
            }
            if (db) {
                double* pb = part_b.data() + k * D;
#pragma omp simd
                for (int64_t i = 0; i < D; ++i) pb[i] += load(gr[i]);
            }
        }
    });
    for (int64_t k = 0; k < blocks; ++k)
        for (int64_t i = 0; i < D; ++i) {
            if (dw) dw[i] += part_w[k * D + i];
            if (db) db[i] += part_b[k * D + i];
        }
}

// fn(TypeTag<T>, TypeTag<Y>) for LayerNorm's input dtype x and output dtype y: the same, or f32 -> bf16.
template <class F>
void dispatch_layer_norm(DType x, DType y, F&& fn) {
    if (x == DType::F32 && y == DType::BF16) return fn(TypeTag<float>{}, TypeTag<bf16>{});
    AC_CHECK(x == y, "layer_norm: output dtype ", dtype_name(y), " for an input of ", dtype_name(x),
             ": the output has the input's dtype, or bf16 for an f32 input");
    dispatch_float(x, "layer_norm", [&](auto tag) { fn(tag, tag); });
}

}  // namespace

Tensor layer_norm(const Tensor& x_in, const Tensor& weight, const Tensor& bias, double eps,
                  std::optional<DType> out_dtype) {
    // Under autocast the normalisation runs in the dtype of its (f32) parameters.
    const Tensor x = autocast_enabled() && weight.defined() ? x_in.to(weight.dtype()) : autocast_to_f32(x_in);
    const Device device = common_device("layer_norm", {&x, &weight, &bias});
    AC_CHECK(x.dim() >= 1, "layer_norm: input must have at least one dim, got ", x.desc());
    const int64_t D = x.size(-1), R = x.numel() / std::max<int64_t>(D, 1);
    for (const Tensor* p : {&weight, &bias})
        AC_CHECK(!p->defined() || (p->dim() == 1 && p->size(0) == D && p->dtype() == x.dtype()),
                 "layer_norm: parameter ", p->desc(), " must be ", dtype_name(x.dtype()), "[", D,
                 "] to match ", x.desc());
    Tensor xc = x.contiguous().detach(), wc = weight.defined() ? weight.contiguous().detach() : Tensor(),
           bc = bias.defined() ? bias.contiguous().detach() : Tensor();
    const DType y_dtype = out_dtype.value_or(x.dtype());
    Tensor y = empty(x.shape(), y_dtype, device);
    Tensor mean = empty({R}, DType::F32, device), rstd = empty({R}, DType::F32, device);
    dispatch_layer_norm(x.dtype(), y_dtype, [&](auto tag, auto ytag) {
        using T = typename decltype(tag)::type;
        using Y = typename decltype(ytag)::type;
        if (device == Device::CUDA)
            cuda::layer_norm_forward(xc, wc, bc, eps, y, mean, rstd);
        else
            layer_norm_rows<T, Y>(xc.data<T>(), wc.defined() ? wc.data<T>() : nullptr,
                                  bc.defined() ? bc.data<T>() : nullptr, y.data<Y>(), mean.data<float>(),
                                  rstd.data<float>(), R, D, eps);
    });
    if (!needs_grad({x, weight, bias})) return y;
    SavedTensor sx(xc, "layer_norm"), sw = wc.defined() ? SavedTensor(wc, "layer_norm") : SavedTensor();
    bool rx = x.requires_grad(), rw = weight.defined() && weight.requires_grad(),
         rb = bias.defined() && bias.requires_grad(), has_w = weight.defined();
    // Under autocast an f32 x is a residual stream, whose gradient the linear layer that fed it multiplies
    // in bf16: x's gradient leaves its bf16 rounding beside it (set_rounded), written in the same pass on
    // the GPU, so no separate cast reads it again.
    const bool round_dx = rx && autocast_enabled() && x.dtype() == DType::F32;
    return record("layer_norm", y, {x, weight, bias}, [=](const Tensor& g) {
        const Tensor& xs = sx.get();
        Tensor gc = g.to(y_dtype).contiguous();
        // x's gradient from its other uses (a residual stream's), when this op may add its own into it
        const Tensor pending = rx ? pending_gradient(0) : Tensor();
        const bool accumulate = pending.defined();
        if (xs.device() == Device::CUDA) {
            Tensor dx = accumulate ? pending : rx ? empty(xs.shape(), xs.dtype(), Device::CUDA) : Tensor();
            Tensor gw = rw ? empty({D}, xs.dtype(), Device::CUDA) : Tensor();
            Tensor gb = rb ? empty({D}, xs.dtype(), Device::CUDA) : Tensor();
            const Tensor dx_low = round_dx ? empty(xs.shape(), DType::BF16, Device::CUDA) : Tensor();
            cuda::layer_norm_backward(gc, xs, has_w ? sw.get() : Tensor(), mean, rstd, dx, accumulate, gw, gb,
                                      dx_low);
            if (round_dx) dx.set_rounded(dx_low);
            return std::vector<Tensor>{dx, gw, gb};
        }
        // on the CPU a bf16 gradient is widened first (exactly), so the sums run as the f32 op's do
        const Tensor gx = gc.to(xs.dtype());
        Tensor dx = accumulate ? pending : empty(xs.shape(), xs.dtype());
        std::vector<double> dw(rw ? D : 0, 0.0), db(rb ? D : 0, 0.0);
        dispatch_float(xs.dtype(), "layer_norm_backward", [&](auto tag) {
            using T = typename decltype(tag)::type;
            layer_norm_backward_rows<T>(gx.data<T>(), xs.data<T>(), has_w ? sw.get().data<T>() : nullptr,
                                        mean.data<float>(), rstd.data<float>(), dx.data<T>(), accumulate,
                                        rw ? dw.data() : nullptr, rb ? db.data() : nullptr, R, D);
        });
        Tensor gw = rw ? from_vector(dw, {D}).to(xs.dtype()) : Tensor();
        Tensor gb = rb ? from_vector(db, {D}).to(xs.dtype()) : Tensor();
        if (round_dx) dx.set_rounded(dx.to(DType::BF16));  // the same values as the GPU's, made here
        return std::vector<Tensor>{rx ? dx : Tensor(), gw, gb};
    });
}

Tensor batch_norm(const Tensor& x_in, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                  Tensor running_var, bool training, double momentum, double eps) {
    const Tensor x = autocast_enabled() && weight.defined() ? x_in.to(weight.dtype()) : autocast_to_f32(x_in);
    AC_CHECK(x.dim() == 2, "batch_norm: input must be (N, C), got ", x.desc());
    const int64_t N = x.size(0), C = x.size(1);
    for (const Tensor* p : std::initializer_list<const Tensor*>{&weight, &bias, &running_mean, &running_var})
        AC_CHECK(!p->defined() || (p->dim() == 1 && p->size(0) == C), "batch_norm: ", p->desc(),
                 " must have shape [", C, "] to match ", x.desc());
    Tensor y;
    if (training) {
        AC_CHECK_HINT(N > 1, "use a batch of at least 2, or eval mode",
                      "batch_norm: training needs more than one "
                      "sample per channel, got ",
                      x.desc());
        Tensor mu = mean(x, {0}, true);                    // (1, C)
        Tensor v = var(x, {0}, /*unbiased=*/false, true);  // (1, C), biased: used to normalise
        y = mul(sub(x, mu), rsqrt(add_scalar(v, eps)));
        if (running_mean.defined()) {
            NoGradGuard no_grad;  // running statistics use the unbiased variance, as PyTorch does
            running_mean.mul_(1 - momentum).add_(mu.detach().reshape({C}), momentum);
            running_var.mul_(1 - momentum).add_(v.detach().reshape({C}), momentum * N / (N - 1.0));
        }
    } else {
        AC_CHECK(running_mean.defined() && running_var.defined(),
                 "batch_norm: eval mode needs running statistics");
        y = mul(sub(x, running_mean), rsqrt(add_scalar(running_var, eps)));
    }
    if (weight.defined()) y = mul(y, weight);
    if (bias.defined()) y = add(y, bias);
    return y;
}

}  // namespace aclip
