// gradcheck.h: central-difference gradient checking in f64.
// The function under test maps inputs to one tensor; it is reduced to a scalar L = sum(out * W) with a
// fixed random W, so every output element takes part. The analytic gradient of L (from backward) is
// compared with (L(x + eps e_i) - L(x - eps e_i)) / 2 eps for every element i of every input.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "engine/core/tensor.h"

namespace aclip {

struct GradcheckResult {
    bool ok = true;
    double max_abs_error = 0;  // over all checked elements
    std::string worst;         // "input 1, element 7: analytic 0.3 vs numeric 0.31"
};

// inputs: f64 tensors; those with requires_grad set are checked. Tolerance per element:
// |analytic - numeric| <= atol + rtol * |numeric|. The defaults suit f64 with eps = 1e-6: the central
// difference has truncation error O(eps^2) ~ 1e-12 and rounding error ~ 1e-16 / eps ~ 1e-10.
GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                          const std::vector<Tensor>& inputs, double eps = 1e-6, double atol = 1e-7,
                          double rtol = 1e-6);

}  // namespace aclip
