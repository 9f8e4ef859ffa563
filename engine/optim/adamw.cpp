// adamw.cpp: see adamw.h.
#include "engine/optim/adamw.h"

#include <cmath>

#include "engine/autograd/grad_mode.h"
#include "engine/cpu/strided_loop.h"
#include "engine/math/adamw.h"
#include "engine/ops/ops.h"

namespace aclip {

AdamW::AdamW(std::vector<ParamGroup> groups, double beta1, double beta2, double eps)
    : groups_(std::move(groups)), beta1_(beta1), beta2_(beta2), eps_(eps) {
    for (const ParamGroup& g : groups_)
        for (const Tensor& p : g.params) {
            AC_CHECK(p.dtype() == DType::F32 && p.is_contiguous() && p.device() == Device::CPU,
                     "AdamW: parameters must be contiguous f32 CPU tensors (master weights), got ", p.desc());
            m_.push_back(zeros(p.shape()));
            v_.push_back(zeros(p.shape()));
        }
}

void AdamW::step(double lr) {
    ++step_;
    AdamWScalars s;
    s.lr = static_cast<float>(lr);
    s.beta1 = static_cast<float>(beta1_);
    s.beta2 = static_cast<float>(beta2_);
    s.eps = static_cast<float>(eps_);
    s.bias_correction1 = static_cast<float>(1.0 - std::pow(beta1_, static_cast<double>(step_)));
    s.bias_correction2_sqrt =
        static_cast<float>(std::sqrt(1.0 - std::pow(beta2_, static_cast<double>(step_))));
    size_t k = 0;
    for (const ParamGroup& group : groups_) {
        s.weight_decay = static_cast<float>(group.weight_decay);
        for (const Tensor& p : group.params) {
            Tensor m = m_[k], v = v_[k];
            ++k;
            if (!p.grad().defined()) continue;
            Tensor g = p.grad().contiguous();
            AC_CHECK(g.dtype() == DType::F32, "AdamW: gradient of ", p.desc(), " is ", g.desc());
            p.impl().storage->version++;
            float* pp = p.data<float>();
            float* pm = m.data<float>();
            float* pv = v.data<float>();
            const float* pg = g.data<float>();
            parallel_for(p.numel(), 16, [&](int64_t i) { adamw_element(pp[i], pm[i], pv[i], pg[i], s); });
        }
    }
}

void AdamW::zero_grad() {
    for (ParamGroup& g : groups_)
        for (Tensor& p : g.params) p.zero_grad();
}

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
    double total = 0;
    for (const Tensor& p : params) {
        if (!p.grad().defined()) continue;
        for (double v : p.grad().to_vector<double>()) total += v * v;
    }
    double norm = std::sqrt(total);
    double scale = max_norm / (norm + 1e-6);  // PyTorch's clip_grad_norm_ formula
    if (scale < 1.0) {
        NoGradGuard no_grad;
        for (const Tensor& p : params)
            if (p.grad().defined()) p.grad().mul_(scale);
    }
    return norm;
}

void ema_update(const std::vector<Tensor>& target, const std::vector<Tensor>& source, double momentum) {
    AC_CHECK(target.size() == source.size(), "ema_update: ", target.size(), " targets for ", source.size(),
             " sources");
    NoGradGuard no_grad;
    for (size_t i = 0; i < target.size(); ++i) {
        AC_CHECK(target[i].shape() == source[i].shape(), "ema_update: tensor ", i, " target ",
                 target[i].desc(), " vs source ", source[i].desc());
        Tensor t = target[i];
        t.mul_(momentum).add_(source[i], 1.0 - momentum);
    }
}

}  // namespace aclip
