// optim.cu: the launches of the optimizer's multi-tensor kernels (optim.cuh): AdamW over every parameter of
// a step, and the EMA of the teacher, one launch per 256 tensors, their table passed as the launch's
// parameters.
#include <vector>

#include "engine/cuda/cuda_ops.h"
#include "engine/cuda/device_util.cuh"
#include "engine/cuda/optim.cuh"

namespace aclip::cuda {

namespace {

AC_REGISTER_KERNEL("adamw_step");
AC_REGISTER_KERNEL("ema_update");

float* f32_ptr(const Tensor& t, const char* op) {
    AC_CHECK(t.device() == Device::CUDA && t.dtype() == DType::F32 && t.is_contiguous(), op,
             ": expected a contiguous f32 CUDA tensor, got ", t.desc());
    return static_cast<float*>(t.raw_data());
}

// Copy k of `low` (none when the list is empty or the tensor undefined) for a tensor of n elements.
bf16* low_ptr(const std::vector<Tensor>& low, size_t k, int64_t n, const char* op) {
    if (k >= low.size() || !low[k].defined()) return nullptr;
    AC_CHECK(low[k].device() == Device::CUDA && low[k].dtype() == DType::BF16 && low[k].is_contiguous() &&
                 low[k].numel() == n,
             op, ": a bf16 copy must be a contiguous bf16 CUDA tensor of ", n, " elements, got ",
             low[k].desc());
    return static_cast<bf16*>(low[k].raw_data());
}

}  // namespace

void adamw_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                const std::vector<Tensor>& exp_avg, const std::vector<Tensor>& exp_avg_sq,
                const std::vector<float>& weight_decay, const AdamWScalars& scalars,
                const std::vector<Tensor>& low) {
    std::vector<TensorSlot> slots;
    for (size_t k = 0; k < params.size(); ++k)
        slots.push_back({f32_ptr(params[k], "AdamW"), f32_ptr(grads[k], "AdamW"),
                         f32_ptr(exp_avg[k], "AdamW"), f32_ptr(exp_avg_sq[k], "AdamW"),
                         low_ptr(low, k, params[k].numel(), "AdamW"), params[k].numel(), weight_decay[k],
                         false});
    for_each_table(slots, [&](const LaunchTable& table, int64_t blocks) {
        adamw_kernel<<<static_cast<unsigned>(blocks), kOptimThreads>>>(table, scalars);
        AC_CUDA_LAUNCH_CHECK("adamw_step");
    });
}

void ema_update(const std::vector<Tensor>& target, const std::vector<Tensor>& source, double momentum,
                const std::vector<Tensor>& low) {
    std::vector<TensorSlot> slots;
    for (size_t k = 0; k < target.size(); ++k)
        slots.push_back({f32_ptr(target[k], "ema_update"), f32_ptr(source[k], "ema_update"), nullptr, nullptr,
                         low_ptr(low, k, target[k].numel(), "ema_update"), target[k].numel(), 0.0f, false});
    for_each_table(slots, [&](const LaunchTable& table, int64_t blocks) {
        ema_kernel<<<static_cast<unsigned>(blocks), kOptimThreads>>>(table, static_cast<float>(momentum),
                                                                     static_cast<float>(1.0 - momentum));
        AC_CUDA_LAUNCH_CHECK("ema_update");
    });
}

}  // namespace aclip::cuda
