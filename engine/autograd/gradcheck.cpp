// gradcheck.cpp: see gradcheck.h.
#include "engine/autograd/gradcheck.h"

#include <cmath>

#include "engine/autograd/grad_mode.h"
#include "engine/math/philox.h"
#include "engine/ops/ops.h"

namespace aclip {

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                          const std::vector<Tensor>& inputs, double eps, double atol, double rtol) {
    for (const Tensor& t : inputs)
        if (t.requires_grad())
            AC_CHECK(t.dtype() == DType::F64 && t.is_contiguous(),
                     "gradcheck: checked inputs must be contiguous "
                     "f64, got ",
                     t.desc());
    Tensor probe = fn(inputs);
    Tensor weights = empty(probe.shape(), DType::F64);
    double* w = weights.data<double>();
    for (int64_t i = 0; i < weights.numel(); ++i) w[i] = normal_at(1234, 0, i);
    auto loss = [&](const std::vector<Tensor>& xs) { return sum(mul(fn(xs).to(DType::F64), weights)); };

    for (const Tensor& t : inputs)
        if (t.requires_grad()) t.impl().grad.reset();
    loss(inputs).backward();

    GradcheckResult result;
    NoGradGuard no_grad;
    for (size_t k = 0; k < inputs.size(); ++k) {
        const Tensor& x = inputs[k];
        if (!x.requires_grad()) continue;
        std::vector<double> analytic =
            x.grad().defined() ? x.grad().to_vector<double>() : std::vector<double>(x.numel(), 0.0);
        double* p = static_cast<double*>(x.impl().storage->data) + x.offset();
        for (int64_t i = 0; i < x.numel(); ++i) {
            double saved = p[i];
            p[i] = saved + eps;
            double up = loss(inputs).item();
            p[i] = saved - eps;
            double down = loss(inputs).item();
            p[i] = saved;
            double numeric = (up - down) / (2 * eps);
            double err = std::abs(analytic[i] - numeric);
            if (!(err <= atol + rtol * std::abs(numeric))) {
                if (result.ok || err > result.max_abs_error)
                    result.worst = str_cat("input ", k, ", element ", i, ": analytic ", analytic[i],
                                           " vs numeric ", numeric);
                result.ok = false;
            }
            if (err > result.max_abs_error || std::isnan(err)) result.max_abs_error = err;
        }
    }
    return result;
}

}  // namespace aclip
