// sync_batch_norm.cpp: see sync_batch_norm.h. Built from engine ops, so it runs wherever they do (CPU or
// GPU) and every rank reads nothing back to the host: the global count stays a tensor.
#include "engine/dist/sync_batch_norm.h"

#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/ops/autocast.h"
#include "engine/ops/ops.h"

namespace aclip {

Tensor sync_batch_norm(const Tensor& x_in, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                       Tensor running_var, double momentum, double eps, Comm& comm) {
    const Tensor x = autocast_enabled() && weight.defined() ? x_in.to(weight.dtype()) : autocast_to_f32(x_in);
    AC_CHECK(x.dim() == 2, "sync_batch_norm: input must be (N, C), got ", x.desc());
    const int64_t N = x.size(0), C = x.size(1);
    for (const Tensor* p : std::initializer_list<const Tensor*>{&weight, &bias, &running_mean, &running_var})
        AC_CHECK(!p->defined() || (p->dim() == 1 && p->size(0) == C), "sync_batch_norm: ", p->desc(),
                 " must have shape [", C, "] to match ", x.desc());
    // at least one row here, so more than one over two or more ranks
    AC_CHECK_HINT(N >= 1 && N * comm.world() > 1, "give every rank at least one row, and use two in all",
                  "sync_batch_norm: ", x.desc(), " on rank ", comm.rank(), " of ", comm.world());

    Tensor x_hat, rstd, count;  // (N, C), (1, C), (1, 1): what the backward needs
    {
        NoGradGuard no_grad;
        Tensor local_mean = mean(x, {0}, true);  // (1, C)
        Tensor d = sub(x, local_mean);
        Tensor stats = concat({full({1, 1}, static_cast<double>(N), x.dtype(), x.device()), local_mean,
                               sum(mul(d, d), {0}, true)},
                              1);             // (1, 1 + 2C): count, mean, sum of squared deviations
        Tensor all = comm.all_gather(stats);  // (world, 1 + 2C), the one exchange forward
        Tensor counts = all.narrow(1, 0, 1), means = all.narrow(1, 1, C), squares = all.narrow(1, 1 + C, C);
        count = sum(counts, {0}, true);                              // (1, 1)
        Tensor mu = div(sum(mul(counts, means), {0}, true), count);  // (1, C)
        Tensor spread = sub(means, mu);                              // (world, C)
        Tensor m2 = add(sum(squares, {0}, true), sum(mul(counts, mul(spread, spread)), {0}, true));
        Tensor var = div(m2, count);  // (1, C), biased: used to normalise
        rstd = rsqrt(add_scalar(var, eps));
        x_hat = mul(sub(x, mu), rstd);
        if (running_mean.defined()) {  // unbiased variance, as PyTorch keeps
            running_mean.mul_(1 - momentum).add_(mu.reshape({C}), momentum);
            running_var.mul_(1 - momentum).add_(div(m2, add_scalar(count, -1.0)).reshape({C}), momentum);
        }
    }
    // y is a tensor of its own even without weight and bias: the backward holds x_hat, and y the backward
    Tensor y = x_hat.detach();
    {
        NoGradGuard no_grad;
        if (weight.defined()) y = mul(y, weight);
        if (bias.defined()) y = add(y, bias);
    }
    if (!needs_grad({x, weight, bias})) return y;
    SavedTensor saved_weight = weight.defined() ? SavedTensor(weight, "sync_batch_norm") : SavedTensor();
    const bool has_weight = weight.defined(), has_bias = bias.defined();
    Comm* c = &comm;  // the communicator outlives the step's graph
    return record("sync_batch_norm", y, {x, weight, bias}, [=](const Tensor& g_in) {
        Tensor g = g_in.to(x_hat.dtype());                                                    // (N, C)
        Tensor g_hat = has_weight ? mul(g, saved_weight.get()) : g;                           // dL/dx_hat
        Tensor sums = concat({sum(g_hat, {0}, true), sum(mul(g_hat, x_hat), {0}, true)}, 1);  // (1, 2C)
        c->all_reduce_sum(sums);  // the one exchange backward
        Tensor mean_g = div(sums.narrow(1, 0, C), count), mean_gx = div(sums.narrow(1, C, C), count);
        Tensor dx = mul(sub(sub(g_hat, mean_g), mul(x_hat, mean_gx)), rstd);
        Tensor dw = has_weight ? sum(mul(g, x_hat), {0}) : Tensor();
        Tensor db = has_bias ? sum(g, {0}) : Tensor();
        return std::vector<Tensor>{dx, dw, db};
    });
}

}  // namespace aclip
