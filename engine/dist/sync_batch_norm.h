// sync_batch_norm.h: BatchNorm whose training statistics span every data-parallel rank (SyncBatchNorm).
// One op with its own backward, so a layer costs one collective forward and one backward, as PyTorch's
// SyncBatchNorm does (composed of sums and all-reduces it cost two each way, every one a latency-bound
// exchange on the step's critical path).
#pragma once
#include "engine/core/tensor.h"
#include "engine/dist/comm.h"

namespace aclip {

// BatchNorm over (N, C) in training mode with the statistics of every rank's rows; ranks may hold different
// numbers of rows (at least one each). Forward: each rank's count, mean and sum of squared deviations are
// gathered and combined exactly (Chan's parallel variance: no E[x^2] - E[x]^2 cancellation). Backward: one
// all-reduce of the column sums of dL/dx_hat and dL/dx_hat * x_hat. The weight and bias gradients are this
// rank's sums, averaged later with every other gradient. The running statistics move by momentum with the
// global unbiased variance.
Tensor sync_batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                       Tensor running_var, double momentum, double eps, Comm& comm);

}  // namespace aclip
