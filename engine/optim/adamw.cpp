// adamw.cpp: see adamw.h.
#include "engine/optim/adamw.h"

#include <cmath>
#include <utility>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/cpu/strided_loop.h"
#include "engine/cuda/cuda_ops.h"
#include "engine/math/adamw.h"
#include "engine/ops/ops.h"

namespace aclip {

namespace {

// The bf16 copies an update leaves beside the tensors it writes (Tensor::set_rounded), for the products of
// the next forward under autocast. for_tensor() gives the copy a CUDA kernel writes in the update's pass
// (undefined when copies are off or t is not a contiguous f32 tensor); leave(), after the update, copies
// the CPU tensors' new values and sets every copy beside its tensor, after the update's version bump.
class Bf16Copies {
  public:
    explicit Bf16Copies(bool on) : on_(on) {}
    Tensor for_tensor(const Tensor& t) {
        if (!on_ || t.dtype() != DType::F32 || !t.is_contiguous()) return Tensor();
        Tensor low = empty(t.shape(), DType::BF16, t.device());
        pairs_.emplace_back(t, low);
        return low;
    }
    void leave() {
        NoGradGuard no_grad;
        for (auto& [t, low] : pairs_) {
            if (t.device() == Device::CPU) low.copy_(t);
            t.set_rounded(low);
        }
    }

  private:
    bool on_;
    std::vector<std::pair<Tensor, Tensor>> pairs_;
};

}  // namespace

AdamW::AdamW(std::vector<ParamGroup> groups, double beta1, double beta2, double eps)
    : groups_(std::move(groups)), beta1_(beta1), beta2_(beta2), eps_(eps) {
    for (const ParamGroup& g : groups_)
        for (const Tensor& p : g.params) {
            AC_CHECK(p.dtype() == DType::F32 && p.is_contiguous(),
                     "AdamW: parameters must be contiguous f32 tensors (master weights), got ", p.desc());
            m_.push_back(zeros(p.shape(), DType::F32, p.device()));
            v_.push_back(zeros(p.shape(), DType::F32, p.device()));
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
    // CUDA parameters are gathered and updated by one multi-tensor launch after the loop.
    std::vector<Tensor> gpu_p, gpu_g, gpu_m, gpu_v, gpu_low;
    std::vector<float> gpu_wd;
    Bf16Copies copies(bf16_copies_);
    for (const ParamGroup& group : groups_) {
        s.weight_decay = static_cast<float>(group.weight_decay);
        for (const Tensor& p : group.params) {
            Tensor m = m_[k], v = v_[k];
            ++k;
            if (!p.grad().defined()) continue;
            Tensor g = p.grad().contiguous();
            AC_CHECK(g.dtype() == DType::F32, "AdamW: gradient of ", p.desc(), " is ", g.desc());
            p.impl().storage->version++;
            if (p.device() == Device::CUDA) {
                gpu_p.push_back(p);
                gpu_g.push_back(g);
                gpu_m.push_back(m);
                gpu_v.push_back(v);
                gpu_low.push_back(copies.for_tensor(p));
                gpu_wd.push_back(s.weight_decay);
                continue;
            }
            float* pp = p.data<float>();
            float* pm = m.data<float>();
            float* pv = v.data<float>();
            const float* pg = g.data<float>();
            parallel_for(p.numel(), 16, [&](int64_t i) { adamw_element(pp[i], pm[i], pv[i], pg[i], s); });
            copies.for_tensor(p);
        }
    }
    if (!gpu_p.empty()) cuda::adamw_step(gpu_p, gpu_g, gpu_m, gpu_v, gpu_wd, s, gpu_low);
    copies.leave();
}

void AdamW::zero_grad() {
    for (ParamGroup& g : groups_)
        for (Tensor& p : g.params) p.zero_grad();
}

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
    double total = 0;
    std::vector<Tensor> gpu_grads;
    for (const Tensor& p : params) {
        if (!p.grad().defined()) continue;
        if (p.grad().device() == Device::CUDA) {
            gpu_grads.push_back(p.grad().contiguous());
            continue;
        }
        for (double v : p.grad().to_vector<double>()) total += v * v;
    }
    if (!gpu_grads.empty()) total += cuda::sum_of_squares(gpu_grads);
    double norm = std::sqrt(total);
    double scale = max_norm / (norm + 1e-6);  // PyTorch's clip_grad_norm_ formula
    if (scale < 1.0) {
        NoGradGuard no_grad;
        for (const Tensor& p : params)
            if (p.grad().defined()) p.grad().mul_(scale);
    }
    return norm;
}

void ema_update(const std::vector<Tensor>& target, const std::vector<Tensor>& source, double momentum,
                bool bf16_copies) {
    AC_CHECK(target.size() == source.size(), "ema_update: ", target.size(), " targets for ", source.size(),
             " sources");
    NoGradGuard no_grad;
    std::vector<Tensor> gpu_target, gpu_source, gpu_low;
    Bf16Copies copies(bf16_copies);
    for (size_t i = 0; i < target.size(); ++i) {
        AC_CHECK(target[i].shape() == source[i].shape(), "ema_update: tensor ", i, " target ",
                 target[i].desc(), " vs source ", source[i].desc());
        Tensor t = target[i];
        if (t.device() == Device::CUDA && t.dtype() == DType::F32 && source[i].dtype() == DType::F32) {
            common_device("ema_update", {&t, &source[i]});
            t.impl().storage->version++;
            gpu_target.push_back(t);
            gpu_source.push_back(source[i].contiguous());
            gpu_low.push_back(copies.for_tensor(t));
            continue;
        }
        t.mul_(momentum).add_(source[i], 1.0 - momentum);
        copies.for_tensor(t);
    }
    if (!gpu_target.empty()) cuda::ema_update(gpu_target, gpu_source, momentum, gpu_low);
    copies.leave();
}

}  // namespace aclip
