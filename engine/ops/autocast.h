// autocast.h: mixed precision as a mode of the ops, in the manner of PyTorch's autocast. Inside an
// AutocastGuard, matrix products (matmul, linear) cast their f32 inputs to bf16 and return bf16;
// accumulation is f32 on the tensor cores and in the CPU GEMM. The weights stay f32 masters whose
// gradients arrive in f32: matmul's casts are recorded (a cast's backward widens the gradient), while
// linear and linear_add multiply an unrecorded bf16 copy and write the master's gradient in f32 straight
// from the weight-gradient product (not rounded to bf16 on the way, and no cast in backward). Elementwise ops
// that meet f32 and bf16 compute in f32 (so the residual stream stays f32; add and sub read the bf16 operand
// as it is, the others widen it first), and the ops whose precision matters most run in f32 whatever their
// input: layer_norm and batch_norm (in the dtype of their f32 parameters; a LayerNorm that feeds only matrix
// products writes its output as bf16 directly, autocast_matmul_dtype), l2_normalize and cross_entropy.
// Softmax keeps its input dtype: its kernels accumulate in f32. Outside a guard nothing changes, and mixing
// dtypes is an error, as everywhere else in the engine. The switch for debugging is simply not to open a
// guard (train.precision = f32).
#pragma once
#include <optional>

#include "engine/core/tensor.h"

namespace aclip {

bool autocast_enabled();  // thread-local, off by default

class AutocastGuard {
  public:
    explicit AutocastGuard(bool on = true);
    ~AutocastGuard();
    AutocastGuard(const AutocastGuard&) = delete;
    AutocastGuard& operator=(const AutocastGuard&) = delete;

  private:
    bool previous_;
};

// The dtype matrix products take under autocast (bf16), or none when it is off: for a producer whose
// output feeds only matrix products to write it directly (layer_norm's out_dtype).
std::optional<DType> autocast_matmul_dtype();

// For the ops: t cast to bf16 when autocast is on and t is f32 (recorded by autograd); else t.
Tensor autocast_to_low(const Tensor& t);
// t cast to f32 when autocast is on and t is bf16; else t.
Tensor autocast_to_f32(const Tensor& t);
// Under autocast, two floating operands of different dtypes are both brought to the wider one; else
// they are returned unchanged (and the op reports a mismatch). takes_mixed: the op's kernel reads f32 with
// bf16 as they are (pointwise_takes_mixed), so that pair is returned unchanged too.
std::pair<Tensor, Tensor> autocast_promote(const Tensor& a, const Tensor& b, bool takes_mixed = false);

}  // namespace aclip
