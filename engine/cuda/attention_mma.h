// attention_mma.h: the tensor-core (bf16 mma) flash attention kernels of attention_mma.cu, which
// attention.cu launches for bf16 inputs; f32 inputs keep attention.cu's f32 kernels.
#pragma once
#include "engine/core/tensor.h"

namespace aclip::cuda {

// Both return false, launching nothing, when the tensor-core kernels do not apply (a dtype other than
// bf16, a head dim other than 32 or 64, or a pointer not 16-byte aligned); the caller then runs the f32
// kernels. q (B, H, Tq, D), k and v (B, H, Tk, D), contiguous; lse (B, H, Tq) f32; delta (B, H, Tq) f32,
// the row sums of dO * O.
bool flash_forward_mma(const Tensor& q, const Tensor& k, const Tensor& v, bool causal, const Tensor& out,
                       const Tensor& lse);
bool flash_backward_mma(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g, const Tensor& lse,
                        const Tensor& delta, bool causal, const Tensor& dq, const Tensor& dk,
                        const Tensor& dv);

}  // namespace aclip::cuda
