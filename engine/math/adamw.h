// adamw.h: the AdamW update of one element, shared by the CPU optimizer and the fused CUDA kernel.
// Decoupled weight decay (Loshchilov & Hutter), with PyTorch's exact order of operations:
//   p -= lr * wd * p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
//   p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
#pragma once
#include <cmath>

#include "engine/math/host_device.h"

namespace aclip {

struct AdamWScalars {
    float lr, beta1, beta2, eps, weight_decay;
    float bias_correction1;       // 1 - beta1^t
    float bias_correction2_sqrt;  // sqrt(1 - beta2^t)
};

AC_HD void adamw_element(float& p, float& m, float& v, float g, const AdamWScalars& s) {
    p -= s.lr * s.weight_decay * p;
    m = s.beta1 * m + (1.0f - s.beta1) * g;
    v = s.beta2 * v + (1.0f - s.beta2) * g * g;
    float denom = ::sqrtf(v) / s.bias_correction2_sqrt + s.eps;
    p -= (s.lr / s.bias_correction1) * m / denom;
}

}  // namespace aclip
