// attention_mma.h: the tensor-core (bf16 mma) flash attention kernels of attention_mma.cu, which
// attention.cu launches for bf16 inputs; f32 inputs keep attention.cu's f32 kernels.
#pragma once
#include "engine/cuda/cuda_ops.h"

namespace aclip::cuda {

// Both return false, launching nothing, when the kernels do not take the operands (cuda_ops.h:
// flash_attention_takes_views, and the same of out, g and the gradients); the caller then runs the f32
// kernels. Any of the tensors may be such strided views; lse (B, H, Tq) f32 is contiguous. The backward
// computes the row sums of dO * O itself.
bool flash_forward_mma(const Tensor& q, const Tensor& k, const Tensor& v, bool causal, const Tensor& out,
                       const Tensor& lse);
bool flash_backward_mma(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                        const Tensor& lse, const Tensor& g, bool causal, const Tensor& dq, const Tensor& dk,
                        const Tensor& dv);

}  // namespace aclip::cuda
