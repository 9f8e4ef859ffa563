// cuda_ops.h: the CUDA backend as the engine's ops see it. Each function runs one kernel (or one library
// call) on tensors that already live on the GPU; the op in engine/ops validates shapes and dtypes, makes
// inputs contiguous where the kernel needs it, allocates outputs on the device and records autograd,
// exactly as for its CPU kernel, so an op's CPU and CUDA paths differ only in the line that computes.
// Device math shared with the CPU (bf16 rounding, activations, the AdamW element, Philox) comes from
// engine/math. In a build without the CUDA backend these functions exist but fail (cuda_ops_none.cpp);
// they cannot be reached there, since no tensor can be allocated on a GPU.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/tensor.h"
#include "engine/cuda/caching_allocator.h"
#include "engine/cuda/kernel_profile.h"
#include "engine/math/adamw.h"
#include "engine/math/pointwise.h"

namespace aclip::cuda {

// ---- memory (engine/cuda/device.cu) ----
void* allocate(size_t bytes);  // from the caching allocator, on the current stream
void free(void* ptr);
// Page-locked host memory, from a caching allocator of its own (cudaHostAlloc is slow): host-to-device
// copies from it run at the link's full speed and need no staging. A freed block is reused only after
// the work queued before its free has run (a copy may still read it).
void* allocate_pinned(size_t bytes);
void free_pinned(void* ptr);

// Copies between host and device, all on the default stream, in order with the kernels.
// copy_to_device is queued and returns at once: from page-locked memory directly (the host must not write
// the source until the device has run the copy), from pageable memory up to kStagedCopyLimit bytes through
// a page-locked staging block; larger pageable copies (weights at setup) wait for the device.
// copy_to_host waits for the copy, and so for everything queued before it, then raises any index fault.
constexpr size_t kStagedCopyLimit = 1 << 20;
void copy_to_device(void* dst, const void* src, size_t bytes, bool src_pinned);
void copy_to_host(void* dst, const void* src, size_t bytes);
void copy_on_device(void* dst, const void* src, size_t bytes);
// A copy to page-locked host memory queued behind the work so far (engine/core/host_copy.h). The handle
// goes to wait_for_copy (waits for that copy alone, then raises an index fault recorded before it) or to
// release_copy (dropped unwaited).
void* copy_to_host_queued(void* dst, const void* src, size_t bytes);
void wait_for_copy(void* copy);
void release_copy(void* copy);
void synchronize();  // waits for all queued work, then raises any index fault
// Times the host has waited for the device (copies to the host, synchronize, large pageable copies): each
// leaves the GPU idle until the host queues work again, so a training step should have few.
uint64_t host_waits();
void set_device(int index);  // before the first CUDA tensor: one GPU per process (data parallel)
AllocatorStats memory_stats();
void reset_peak_memory();
void release_cached_memory();
std::string device_name();  // "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs)"

// ---- elementwise (pointwise.cu) ----
// out = op(a, b; s0, s1) with a and b broadcast to out's shape; b undefined for unary ops. out may be a
// itself (same layout) for in-place updates.
void pointwise(PW op, double s0, double s1, const Tensor& out, const Tensor& a, const Tensor& b);
void where(const Tensor& out, const Tensor& mask, const Tensor& a, const Tensor& b);
void strided_copy(const Tensor& dst, const Tensor& src);  // src broadcasts to dst; any dtypes
void fill(const Tensor& t, double value);
void dropout_scale(const Tensor& out, double p, uint64_t seed, uint64_t offset);  // 0 or 1/(1-p)

// ---- reductions (reduce.cu); x contiguous, seen as (O, R, I) ----
void sum(const Tensor& x, int64_t O, int64_t R, int64_t I, const Tensor& out);  // out: x's dtype or f32
void max_with_index(const Tensor& x, int64_t O, int64_t R, int64_t I, const Tensor& values,
                    const Tensor& index);
double sum_of_squares(const std::vector<Tensor>& tensors);  // f32 tensors, accumulated in f64

// ---- softmax and losses (softmax.cu); rows of the last dim, contiguous ----
void softmax_rows(const Tensor& x, const Tensor& y, bool log);
void softmax_backward_rows(const Tensor& g, const Tensor& y, const Tensor& dx, bool log);
// out [] = -sum logp[i, t_i]; targets outside [0, C) are reported as index faults (index_fault.cuh)
void nll_sum(const Tensor& logp, const Tensor& target, const Tensor& out);
// dx = (exp(logp) - onehot(target)) * g / N; g: the loss's gradient, a one-element tensor of logp's dtype
void cross_entropy_backward(const Tensor& logp, const Tensor& target, const Tensor& g, const Tensor& dx);

// ---- layer_norm (layer_norm.cu); x (R, D) contiguous; w, b (D) or undefined ----
void layer_norm_forward(const Tensor& x, const Tensor& w, const Tensor& b, double eps, const Tensor& y,
                        const Tensor& mean, const Tensor& rstd);
// dx (undefined: not wanted) receives x's gradient, or, with `accumulate`, has it added to what it holds;
// dx_low (bf16, or undefined) the same values rounded, in the same pass.
void layer_norm_backward(const Tensor& g, const Tensor& x, const Tensor& w, const Tensor& mean,
                         const Tensor& rstd, const Tensor& dx, bool accumulate, const Tensor& dw,
                         const Tensor& db, const Tensor& dx_low = Tensor());

// ---- matrix products (matmul.cu, cuBLASLt) ----
// out (batch, M, N) = a (batch, M, K) @ b (batch, K, N); each operand row-major or transposed, batch
// strides in elements (0 broadcasts). f32 or bf16 inputs, f32 accumulation; out in the inputs' dtype, or
// f32 from bf16 inputs.
struct GemmOperand {
    const Tensor* t;
    bool trans;  // the (rows, cols) matrix is stored column-major
    int64_t ld;  // leading dimension of the stored layout
    int64_t batch_stride;
};
// What the product's epilogue does with `bias` (batch 1, contiguous, of out's dtype): Bias adds the (N)
// bias to every row of out, saving the pass over out that adding it afterwards costs; BiasGradient writes
// the sums of a's rows over K into the (M) bias, saving a pass over a (a linear layer's bias gradient
// beside its weight gradient, a = the output gradient transposed). gemm returns whether the epilogue ran:
// false without a bias, or when cuBLASLt cannot (a bias not 16-byte aligned, or no algorithm with the
// epilogue), and the caller then does it. `accumulate`, if defined (batch 1, contiguous, out's shape and
// dtype), is added to the product as it is written (cuBLASLt's C with beta 1): out = a b + accumulate
// (+ bias), one pass over out instead of writing the product and adding it in another (a residual stream);
// where cuBLASLt has no algorithm adding C (small unaligned matrices), the add follows the product.
enum class GemmEpilogue { None, Bias, BiasGradient };  // None: a plain product (no bias given)
// Whether the BiasGradient epilogue runs. ACLIP_BIAS_GRADIENT_EPILOGUE=0 in the environment turns it off
// (gemm returns false and the caller sums the columns): to measure the epilogue's cost to the
// weight-gradient products against the separate sums (tools/gpu_check.sh runs the step both ways).
bool bias_gradient_epilogue();
bool gemm(const GemmOperand& a, const GemmOperand& b, const Tensor& out, int64_t batch, int64_t M, int64_t N,
          int64_t K, const Tensor& bias = Tensor(), GemmEpilogue epilogue = GemmEpilogue::Bias,
          const Tensor& accumulate = Tensor());

// ---- indexing (index.cu); index tensors are i64 and contiguous ----
// The kernels check each index against its range (index_fault.cuh): an index outside it is skipped and
// reported at the next synchronisation; `op` names the op in that report (a string literal).
// x seen as (O, S, I), out (O, L, I): out[o, l] = x[o, index[l]], or x[o, index[o, l]] when `batched`
// (index (O, L)). index_add is its adjoint: dst (O, S, I) += src (O, L, I) at those rows.
void index_select(const Tensor& x, int64_t O, int64_t S, int64_t I, const Tensor& index, bool batched,
                  const Tensor& out, const char* op);
void index_add(const Tensor& dst, int64_t O, int64_t S, int64_t I, const Tensor& index, bool batched,
               const Tensor& src, const char* op);
// out[p] = x[offset of p with coordinate dim replaced by index[p]] (gather), or x[...] += src[p].
void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out);
void scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
// Per row of the last dim, the order of indices (stable; ties keep the lower index first); first k kept.
void sort_rows(const Tensor& x, bool descending, int64_t k, const Tensor& index);

// ---- 2-D maps (resize.cu); contiguous (N, C, H, W) ----
void resize_bilinear(const Tensor& x, const Tensor& out, bool adjoint);  // adjoint: out is the gradient
void avg_pool2d(const Tensor& x, const Tensor& out, int64_t k, bool adjoint);

// ---- attention (attention.cu, attention_mma.cu); q (B, H, Tq, D), k, v (B, H, Tk, D), D in {32, 64};
// contiguous, except where flash_attention_takes_views says the kernels take the views as they are ----
void flash_attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, bool causal,
                             const Tensor& out, const Tensor& lse);
void flash_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                              const Tensor& lse, const Tensor& g, bool causal, const Tensor& dq,
                              const Tensor& dk, const Tensor& dv);
// probs (B, H, Tk): the softmax row of query 0 (the CLS token) of every head; q and k may be any views
// whose last dim is contiguous.
void attention_cls_probs(const Tensor& q, const Tensor& k, const Tensor& probs);
bool flash_attention_supports(int64_t head_dim);
// bf16 q, k, v (and out, g and the gradients alike) run on the tensor cores as strided views: the last dim
// contiguous, the other strides whole 16-byte rows, 16-byte aligned (a contiguous tensor, or the q, k and v
// of a packed projection, read in place).
bool flash_attention_takes_views(const Tensor& q, const Tensor& k, const Tensor& v);
// Whether bf16 attention runs on the tensor cores (attention_mma.cu). ACLIP_TENSOR_CORE_ATTENTION=0 in the
// environment turns them off (the composed attention runs instead): to measure them against it, or to go
// round them should a GPU disagree with their parity case.
bool tensor_core_attention();

// ---- optimizer (optim.cu) ----
// `low`, if not empty: per tensor a bf16 copy to receive the updated values rounded (undefined: none).
void adamw_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                const std::vector<Tensor>& exp_avg, const std::vector<Tensor>& exp_avg_sq,
                const std::vector<float>& weight_decay, const AdamWScalars& scalars,
                const std::vector<Tensor>& low = {});
void ema_update(const std::vector<Tensor>& target, const std::vector<Tensor>& source, double momentum,
                const std::vector<Tensor>& low = {});

// ---- kernel profile (kernel_profile.cu; see kernel_profile.h) ----
void profile_start();  // from now on, every launch records an event behind it
std::vector<ProfileRow>
profile_stop();  // waits for the GPU; each kernel name's calls and time, largest first

// ---- the kernel registry: every kernel above registers its name; the parity harness covers each ----
const std::vector<std::string>& kernel_names();

}  // namespace aclip::cuda
