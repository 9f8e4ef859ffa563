// checkpoint.cpp: see checkpoint.h. The recorded node's backward is a nested backward pass over a graph
// built on the spot from a detached copy of the input.
#include "engine/autograd/checkpoint.h"

#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/ops/autocast.h"

namespace aclip {

Tensor checkpoint(const std::function<Tensor(const Tensor&)>& fn, const Tensor& x,
                  const std::vector<Tensor>& params) {
    std::vector<Tensor> inputs = {x};
    inputs.insert(inputs.end(), params.begin(), params.end());
    if (!needs_grad(inputs)) return fn(x);
    Tensor out;
    {
        NoGradGuard no_grad;  // nothing inside is recorded, so nothing inside is kept
        out = fn(x);
    }
    const SavedTensor saved_x(x, "checkpoint");
    const bool autocast = autocast_enabled();
    const size_t n = inputs.size();
    return record("checkpoint", out, inputs, [fn, saved_x, autocast, n](const Tensor& g) {
        Tensor again = saved_x.get().detach().requires_grad_();
        Tensor y;
        {
            GradModeGuard record_again(true);  // backward runs with recording off
            AutocastGuard same_mode(autocast);
            y = fn(again);
        }
        y.backward(g);  // the parameters' gradients accumulate as they go; the input's comes back
        std::vector<Tensor> grads(n);
        grads[0] = again.grad();
        return grads;
    });
}

}  // namespace aclip
