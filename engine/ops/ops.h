// ops.h: every differentiable (and a few non-differentiable) tensor op of the engine, as free functions.
// Each op validates its inputs (errors name the op, shapes, dtypes and device), runs the CPU or the CUDA
// kernel (by the inputs' device; engine/cuda/cuda_ops.h), and records its backward rule when an input
// requires grad. Backward rules are written with these same ops, so they run wherever the forward ops
// run. The implementations are grouped by family:
//   elementwise.cpp  unary and broadcasting binary maths, where, masked_fill, casts
//   reduce.cpp       sum, mean, var, max, argmax, sum_to_shape
//   matmul.cpp       matmul, batched matmul, linear
//   norm.cpp         layer_norm, batch_norm
//   softmax.cpp      softmax, log_softmax, cross_entropy
//   index.cpp        embedding, index_select, gather, gather_rows, scatter_add, concat, stack, split,
//                    topk, argsort
//   attention.cpp    scaled_dot_product_attention, fused_attention, self_attention, attention_cls_probs,
//                    dropout, l2_normalize
//   autocast.h       mixed precision: which dtype products, norms and losses run in
//   resize.cpp       bilinear resize and average pooling of 2-D maps
#pragma once
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "engine/core/tensor.h"

namespace aclip {

// ---- elementwise, with NumPy broadcasting ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);  // gradient goes to a where a >= b, else to b
Tensor add_scalar(const Tensor& a, double s);
Tensor mul_scalar(const Tensor& a, double s);
Tensor neg(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor rsqrt(const Tensor& a);
Tensor abs(const Tensor& a);
Tensor pow_scalar(const Tensor& a, double exponent);
Tensor clamp(const Tensor& a, std::optional<double> lo, std::optional<double> hi);
Tensor relu(const Tensor& a);
Tensor gelu(const Tensor& a);        // exact, erf form
Tensor quick_gelu(const Tensor& a);  // x * sigmoid(1.702 x)
Tensor sigmoid(const Tensor& a);
Tensor tanh(const Tensor& a);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);  // cond: u8 (nonzero = take a)
Tensor masked_fill(const Tensor& a, const Tensor& mask, double value);
Tensor cast(const Tensor& a, DType dtype);  // same as a.to(dtype)

inline Tensor operator+(const Tensor& a, const Tensor& b) {
    return add(a, b);
}
inline Tensor operator-(const Tensor& a, const Tensor& b) {
    return sub(a, b);
}
inline Tensor operator*(const Tensor& a, const Tensor& b) {
    return mul(a, b);
}
inline Tensor operator/(const Tensor& a, const Tensor& b) {
    return div(a, b);
}
inline Tensor operator-(const Tensor& a) {
    return neg(a);
}
inline Tensor operator+(const Tensor& a, double s) {
    return add_scalar(a, s);
}
inline Tensor operator-(const Tensor& a, double s) {
    return add_scalar(a, -s);
}
inline Tensor operator*(const Tensor& a, double s) {
    return mul_scalar(a, s);
}
inline Tensor operator*(double s, const Tensor& a) {
    return mul_scalar(a, s);
}
inline Tensor operator/(const Tensor& a, double s) {
    return mul_scalar(a, 1.0 / s);
}

// Comparisons give u8 masks (no gradient).
Tensor greater(const Tensor& a, const Tensor& b);
Tensor equal(const Tensor& a, const Tensor& b);

// ---- reductions over dims (empty dims = all dims) ----
// sum's dtype: the output's, a's by default or f32 from bf16 (f32 sums left unrounded, as torch.sum(dtype=);
// the gradient comes back in a's dtype).
Tensor sum(const Tensor& a, const std::vector<int64_t>& dims = {}, bool keepdim = false,
           std::optional<DType> dtype = {});
Tensor mean(const Tensor& a, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor var(const Tensor& a, const std::vector<int64_t>& dims, bool unbiased = true, bool keepdim = false);
Tensor max(const Tensor& a, int64_t dim, bool keepdim = false);     // values; gradient to the first argmax
Tensor argmax(const Tensor& a, int64_t dim, bool keepdim = false);  // i64
Tensor sum_to_shape(const Tensor& a, const Shape& shape);  // undoes broadcasting (sums expanded dims)

// ---- matrix products ----
Tensor matmul(const Tensor& a, const Tensor& b);  // (..., M, K) @ (..., K, N), batch dims broadcast
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = {});  // x Wᵀ + b; W (out, in)
// residual + linear(x, weight, bias) in residual's dtype, for a residual stream: on the GPU the product is
// written straight into the sum (cuBLASLt adds residual as it writes), one pass over the stream instead of
// the product's and the add's. Under autocast x and W are bf16 while residual and bias stay f32: the branch
// is then not rounded to bf16 before it is added (on the CPU as on the GPU).
Tensor linear_add(const Tensor& residual, const Tensor& x, const Tensor& weight, const Tensor& bias = {});

// ---- normalisation ----
// Over the last dim. out_dtype: the output's dtype, by default the input's (after autocast, f32); bf16 for
// an f32 input writes the output as a cast to bf16 would (for a matrix product that takes bf16 anyway,
// saving the f32 output and the cast), and takes its gradient in bf16.
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps,
                  std::optional<DType> out_dtype = std::nullopt);
// x (N, C). Training: batch statistics, and running_mean/var (if defined) move by momentum. Eval: running.
Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                  Tensor running_var, bool training, double momentum, double eps);

// ---- softmax and losses ----
Tensor softmax(const Tensor& x, int64_t dim = -1);
Tensor log_softmax(const Tensor& x, int64_t dim = -1);
// The gradient of softmax's input over the last dim, from its output y and the output's gradient g:
// y (g - sum(g y)). What softmax's backward runs, for backward rules that keep the probabilities
// themselves (the composed self-attention); records nothing.
Tensor softmax_backward(const Tensor& y, const Tensor& g);
Tensor cross_entropy(const Tensor& logits, const Tensor& target);  // (N, C), (N) i64 -> mean NLL, []

// ---- indexing and joining ----
Tensor embedding(const Tensor& weight, const Tensor& ids);  // weight (V, D), ids any shape (i32/i64)
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);  // index 1-D
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);        // index same rank as x
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
// x (B, N, ...), index (B, K): out (B, K, ...) with out[b, k] = x[b, index[b, k]], rows of each sample
// (kept patches, end-of-text tokens). index_select with a row of indices per sample: the index holds B * K
// values, not one per element as gather's would.
Tensor gather_rows(const Tensor& x, const Tensor& index);
Tensor concat(const std::vector<Tensor>& xs, int64_t dim);
Tensor stack(const std::vector<Tensor>& xs, int64_t dim);
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim);
// Largest k along the last dim, sorted descending; ties keep the lower index first. No gradient.
std::pair<Tensor, Tensor> topk(const Tensor& x, int64_t k);
Tensor argsort(const Tensor& x, bool descending = false);  // along the last dim, stable. No gradient.

// ---- attention, dropout, normalisation of vectors ----
struct AttentionResult {
    Tensor out;    // (B, H, Tq, D)
    Tensor probs;  // (B, H, Tq, Tk) when requested
};
// q (B, H, Tq, D), k and v (B, H, Tk, D); scale = 1/sqrt(D); causal masks keys after each query.
AttentionResult scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal,
                                             bool return_probs = false);
// The same attention through the fused CUDA kernels (head dims 32 and 64; the scores never reach memory),
// whatever the length; on the CPU, or for other head dims, the composed op above.
Tensor fused_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal);
// Multi-head self-attention of a packed projection: qkv (B, T, 3W) holds q, k and v side by side, each
// (B, T, heads, W / heads) (PyTorch's in_proj layout); returns (B, T, W), the heads side by side. On the
// GPU in bf16 the tensor-core kernels read q, k and v in place, write the output in this layout and the
// gradient of qkv as one tensor: no copies around the attention, forward or backward. Elsewhere, the
// composed attention on views, recorded as one op whose backward also writes one packed gradient.
Tensor self_attention(const Tensor& qkv, int64_t heads, bool causal);
// q (which = 0), k (1) or v (2) of such a packed projection, as a (B, heads, T, W / heads) view.
Tensor packed_heads(const Tensor& qkv, int64_t heads, int64_t which);
// The softmax attention row of query 0 (the CLS token) of every head: (B, H, Tk). No gradient. On the GPU
// this is the one row fused attention cannot return; the attentive mask reads it from the EMA model.
Tensor attention_cls_probs(const Tensor& q, const Tensor& k);
// Zeroes each element with probability p (from a counter-based stream: seed, offset), scales by 1/(1-p).
Tensor dropout(const Tensor& x, double p, uint64_t seed, uint64_t offset, bool training = true);
Tensor l2_normalize(const Tensor& x, int64_t dim = -1, double eps = 1e-12);

// ---- 2-D maps (N, C, H, W) ----
Tensor resize_bilinear(const Tensor& x, int64_t out_h, int64_t out_w);  // align_corners=False, no antialias
Tensor avg_pool2d(const Tensor& x, int64_t kernel);                     // stride = kernel, no padding

}  // namespace aclip
