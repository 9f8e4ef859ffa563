// checkpoint.h: activation (gradient) checkpointing. A function run under checkpoint() keeps none of its
// intermediate tensors: only its input is saved, and backward runs the function again, with recording
// on, to take its gradients. The memory of every activation inside is traded for a second forward pass.
// With a deterministic function (no random draws) the gradients are those of the plain call, bit for bit.
#pragma once
#include <functional>
#include <vector>

#include "engine/core/tensor.h"

namespace aclip {

// fn(x) with fn's intermediates dropped. params: the leaves fn reads that may need gradients (a
// module's parameters); they receive their gradients while the recomputation runs backward. fn must read
// nothing else that needs gradients (its backward would run twice). The recomputation sees the autocast
// mode of the call.
Tensor checkpoint(const std::function<Tensor(const Tensor&)>& fn, const Tensor& x,
                  const std::vector<Tensor>& params);

}  // namespace aclip
