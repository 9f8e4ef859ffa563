// layers.h: the layers a CLIP-style model is built from. Parameter names and layouts follow PyTorch
// (nn.Linear, nn.LayerNorm, nn.Embedding, nn.BatchNorm1d, nn.MultiheadAttention with its packed
// in-projection, and OpenAI CLIP's ResidualAttentionBlock), so state dicts map one to one.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/dist/sync_batch_norm.h"
#include "engine/nn/init.h"
#include "engine/nn/module.h"
#include "engine/ops/ops.h"

namespace aclip {

enum class Activation { GELU, QuickGELU, ReLU };
Tensor activate(const Tensor& x, Activation act);
Activation activation_from_name(const std::string& name);  // "gelu", "quick_gelu", "relu"

// y = x Wᵀ + b. W (out, in), b (out). Init as PyTorch: U(-1/sqrt(in), 1/sqrt(in)) for both.
class Linear : public Module {
  public:
    Linear(int64_t in, int64_t out, bool bias, Generator& gen);
    // x Wᵀ + b, or residual + x Wᵀ + b in one pass when a residual stream is given (linear_add)
    Tensor forward(const Tensor& x, const Tensor& residual = {}) const {
        return residual.defined() ? linear_add(residual, x, weight, bias) : linear(x, weight, bias);
    }
    void visit(Visitor& v) override;
    Tensor weight, bias;  // (out, in), (out)
};

class LayerNorm : public Module {
  public:
    LayerNorm(int64_t dim, double eps);
    Tensor forward(const Tensor& x, std::optional<DType> out_dtype = std::nullopt) const;  // see layer_norm
    void visit(Visitor& v) override;
    Tensor weight, bias;  // (dim), (dim)
    double eps;
};

// Init N(0, 1) as PyTorch.
class Embedding : public Module {
  public:
    Embedding(int64_t num, int64_t dim, Generator& gen);
    Tensor forward(const Tensor& ids) const;
    void visit(Visitor& v) override;
    Tensor weight;  // (num, dim)
};

// Over (N, C): batch statistics in training (running statistics move by momentum), running ones in eval.
class BatchNorm1d : public Module {
  public:
    BatchNorm1d(int64_t channels, double eps = 1e-5, double momentum = 0.1);
    Tensor forward(const Tensor& x);
    void visit(Visitor& v) override;
    Tensor weight, bias, running_mean, running_var, num_batches_tracked;  // (C) x4, i64 []
    double eps, momentum;
    Comm* comm = nullptr;  // when set (world > 1), training statistics span every rank (SyncBatchNorm)

  private:
    // The host's copy of num_batches_tracked, valid while the tensor's storage and version are the ones it
    // last wrote (a checkpoint load or a move re-reads it): a GPU counter is counted without a read-back.
    int64_t batches_ = 0;
    const void* counted_at_ = nullptr;
    uint64_t counted_version_ = 0;
};

// c_fc -> activation -> c_proj, as in CLIP's ResidualAttentionBlock.
class Mlp : public Module {
  public:
    Mlp(int64_t width, int64_t hidden, Activation act, Generator& gen);
    Tensor forward(const Tensor& x, const Tensor& residual = {}) const;  // residual: added by c_proj
    void visit(Visitor& v) override;
    Linear c_fc, c_proj;
    Activation act;
};

// Multi-head self-attention over x (B, T, W) with PyTorch's packed in-projection: in_proj_weight (3W, W)
// holds q, k, v rows in that order. Init as PyTorch: xavier-uniform in_proj, zero biases.
class MultiheadAttention : public Module {
  public:
    MultiheadAttention(int64_t width, int64_t heads, Generator& gen);
    // first_probs, if given, receives the attention probabilities of the first query (B, H, T), without
    // a gradient (attention_cls_probs: the fused attention never forms the (T, T) matrix); not causal.
    // residual, if given, is added by out_proj.
    Tensor forward(const Tensor& x, bool causal, Tensor* first_probs = nullptr,
                   const Tensor& residual = {}) const;
    void visit(Visitor& v) override;
    Tensor in_proj_weight, in_proj_bias;  // (3W, W), (3W)
    Linear out_proj;
    int64_t width, heads;
};

// Pre-norm transformer block: x += attn(ln_1(x)); x += mlp(ln_2(x)).
class ResidualAttentionBlock : public Module {
  public:
    ResidualAttentionBlock(int64_t width, int64_t heads, int64_t mlp_hidden, Activation act, double ln_eps,
                           Generator& gen);
    Tensor forward(const Tensor& x, bool causal, Tensor* first_probs = nullptr) const;
    void visit(Visitor& v) override;
    LayerNorm ln_1;
    MultiheadAttention attn;
    LayerNorm ln_2;
    Mlp mlp;
};

// A stack of pre-norm blocks ("transformer.resblocks.{i}" in OpenAI CLIP).
class Transformer : public Module {
  public:
    Transformer(int64_t width, int64_t layers, int64_t heads, int64_t mlp_hidden, Activation act,
                double ln_eps, Generator& gen);
    // first_probs, if given, receives each layer's attention probabilities of the first query (B, H, T).
    Tensor forward(const Tensor& x, bool causal, std::vector<Tensor>* first_probs = nullptr) const;
    void visit(Visitor& v) override;
    std::vector<std::unique_ptr<ResidualAttentionBlock>> resblocks;
    // Gradient checkpointing: when recording, each block keeps only its input and is run again in
    // backward (engine/autograd/checkpoint.h): about a third more compute for a fraction of the memory.
    bool grad_checkpointing = false;
};

}  // namespace aclip
