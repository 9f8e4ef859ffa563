// adamw.h: the AdamW optimizer over parameter groups, global-norm gradient clipping, and the EMA update
// of one parameter set towards another. Master weights and moments are f32.
#pragma once
#include <string>
#include <vector>

#include "engine/core/tensor.h"

namespace aclip {

struct ParamGroup {
    std::vector<Tensor> params;
    double weight_decay = 0.0;
};

class AdamW {
  public:
    AdamW(std::vector<ParamGroup> groups, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8);
    void step(double lr);  // parameters without a gradient are skipped
    void zero_grad();
    int64_t steps() const { return step_; }
    // Moments, by group and position, for checkpoints: exp_avg and exp_avg_sq of each parameter.
    std::vector<Tensor>& exp_avg() { return m_; }
    std::vector<Tensor>& exp_avg_sq() { return v_; }
    void set_steps(int64_t s) { step_ = s; }
    const std::vector<ParamGroup>& groups() const { return groups_; }
    // On: each step also writes every parameter it updates rounded to bf16, in the same pass on the GPU,
    // and leaves the copy beside it (Tensor::set_rounded) for the next forward's bf16 products (training
    // under autocast), which then cast nothing. Off by default.
    void keep_bf16_copies(bool on) { bf16_copies_ = on; }

  private:
    std::vector<ParamGroup> groups_;
    std::vector<Tensor> m_, v_;  // one per parameter, groups flattened in order
    double beta1_, beta2_, eps_;
    int64_t step_ = 0;
    bool bf16_copies_ = false;
};

// Scales all gradients so their global L2 norm is at most max_norm; returns the norm before clipping.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

// target = momentum * target + (1 - momentum) * source, element by element (no gradient); with
// bf16_copies, each target's bf16 rounding is left beside it as AdamW::keep_bf16_copies does.
void ema_update(const std::vector<Tensor>& target, const std::vector<Tensor>& source, double momentum,
                bool bf16_copies = false);

}  // namespace aclip
