// layers.cpp: see layers.h.
#include "engine/nn/layers.h"

#include <cmath>

#include "engine/autograd/checkpoint.h"
#include "engine/autograd/grad_mode.h"
#include "engine/ops/autocast.h"
#include "engine/ops/ops.h"

namespace aclip {

Tensor activate(const Tensor& x, Activation act) {
    switch (act) {
        case Activation::GELU:
            return gelu(x);
        case Activation::QuickGELU:
            return quick_gelu(x);
        case Activation::ReLU:
            return relu(x);
    }
    AC_FAIL("unknown activation");
}

Activation activation_from_name(const std::string& name) {
    if (name == "gelu") return Activation::GELU;
    if (name == "quick_gelu") return Activation::QuickGELU;
    if (name == "relu") return Activation::ReLU;
    AC_FAIL("unknown activation '", name, "'; accepted: gelu, quick_gelu, relu");
}

namespace {
Tensor parameter(const Shape& shape) {
    return empty(shape).requires_grad_();
}
}  // namespace

Linear::Linear(int64_t in, int64_t out, bool has_bias, Generator& gen) {
    weight = parameter({out, in});
    init_fan_in_uniform(weight, gen, in);
    if (has_bias) {
        bias = parameter({out});
        init_fan_in_uniform(bias, gen, in);
    }
}

void Linear::visit(Visitor& v) {
    v.param("weight", weight);
    v.param("bias", bias);
}

LayerNorm::LayerNorm(int64_t dim, double eps_) : eps(eps_) {
    weight = parameter({dim});
    bias = parameter({dim});
    init_ones(weight);
    init_zeros(bias);
}

Tensor LayerNorm::forward(const Tensor& x, std::optional<DType> out_dtype) const {
    return layer_norm(x, weight, bias, eps, out_dtype);
}

void LayerNorm::visit(Visitor& v) {
    v.param("weight", weight);
    v.param("bias", bias);
}

Embedding::Embedding(int64_t num, int64_t dim, Generator& gen) {
    weight = parameter({num, dim});
    init_normal(weight, gen, 0.0, 1.0);
}

Tensor Embedding::forward(const Tensor& ids) const {
    return embedding(weight, ids);
}

void Embedding::visit(Visitor& v) {
    v.param("weight", weight);
}

BatchNorm1d::BatchNorm1d(int64_t channels, double eps_, double momentum_) : eps(eps_), momentum(momentum_) {
    weight = parameter({channels});
    bias = parameter({channels});
    init_ones(weight);
    init_zeros(bias);
    running_mean = zeros({channels});
    running_var = ones({channels});
    num_batches_tracked = zeros({}, DType::I64);
}

Tensor BatchNorm1d::forward(const Tensor& x) {
    if (training()) {  // one counter, wherever it lives
        NoGradGuard no_grad;
        if (counted_at_ != num_batches_tracked.raw_data() ||
            counted_version_ != num_batches_tracked.version())
            batches_ = static_cast<int64_t>(num_batches_tracked.item());  // written elsewhere: read it
        num_batches_tracked.fill_(static_cast<double>(++batches_));
        counted_at_ = num_batches_tracked.raw_data();
        counted_version_ = num_batches_tracked.version();
    }
    if (training() && comm && comm->world() > 1)
        return sync_batch_norm(x, weight, bias, running_mean, running_var, momentum, eps, *comm);
    return batch_norm(x, weight, bias, running_mean, running_var, training(), momentum, eps);
}

void BatchNorm1d::visit(Visitor& v) {
    v.param("weight", weight);
    v.param("bias", bias);
    v.buffer("running_mean", running_mean);
    v.buffer("running_var", running_var);
    v.buffer("num_batches_tracked", num_batches_tracked);
}

Mlp::Mlp(int64_t width, int64_t hidden, Activation act_, Generator& gen)
    : c_fc(width, hidden, true, gen), c_proj(hidden, width, true, gen), act(act_) {}

Tensor Mlp::forward(const Tensor& x, const Tensor& residual) const {
    return c_proj.forward(activate(c_fc.forward(x), act), residual);
}

void Mlp::visit(Visitor& v) {
    v.child("c_fc", c_fc);
    v.child("c_proj", c_proj);
}

MultiheadAttention::MultiheadAttention(int64_t width_, int64_t heads_, Generator& gen)
    : out_proj(width_, width_, true, gen), width(width_), heads(heads_) {
    AC_CHECK(heads > 0 && width % heads == 0, "MultiheadAttention: width ", width, " is not divisible by ",
             heads, " heads");
    in_proj_weight = parameter({3 * width, width});
    double bound = std::sqrt(6.0 / static_cast<double>(width + 3 * width));  // xavier-uniform of (3W, W)
    init_uniform(in_proj_weight, gen, -bound, bound);
    in_proj_bias = parameter({3 * width});
    init_zeros(in_proj_bias);
    init_zeros(out_proj.bias);
}

Tensor MultiheadAttention::forward(const Tensor& x, bool causal, Tensor* first_probs,
                                   const Tensor& residual) const {
    AC_CHECK(x.dim() == 3 && x.size(2) == width, "MultiheadAttention: input must be (B, T, ", width,
             "), got ", x.desc());
    const Tensor qkv = linear(x, in_proj_weight, in_proj_bias);  // (B, T, 3W): q, k, v side by side
    const Tensor merged = self_attention(qkv, heads, causal);    // (B, T, W)
    if (first_probs) {
        AC_CHECK(!causal,
                 "MultiheadAttention: the first query's probabilities of causal attention are not "
                 "supported (its only key is itself)");
        *first_probs =
            attention_cls_probs(packed_heads(qkv, heads, 0), packed_heads(qkv, heads, 1));  // (B, H, T)
    }
    return out_proj.forward(merged, residual);
}

void MultiheadAttention::visit(Visitor& v) {
    v.param("in_proj_weight", in_proj_weight);
    v.param("in_proj_bias", in_proj_bias);
    v.child("out_proj", out_proj);
}

ResidualAttentionBlock::ResidualAttentionBlock(int64_t width, int64_t heads, int64_t mlp_hidden,
                                               Activation act, double ln_eps, Generator& gen)
    : ln_1(width, ln_eps), attn(width, heads, gen), ln_2(width, ln_eps), mlp(width, mlp_hidden, act, gen) {}

Tensor ResidualAttentionBlock::forward(const Tensor& x, bool causal, Tensor* first_probs) const {
    // ln_1 and ln_2 feed only the first matrix product of attn and mlp: under autocast they write the bf16
    // it takes instead of f32 and a cast (the same values; 2 bytes an element between them instead of 10,
    // forward and backward). The last product of each adds the residual stream as it is written
    // (linear_add): 8 bytes an element of the stream instead of 12 (a bf16 branch written, then read with
    // the stream and the sum written).
    const std::optional<DType> to_matmul = autocast_matmul_dtype();
    Tensor h = attn.forward(ln_1.forward(x, to_matmul), causal, first_probs, x);  // x + attn(ln_1(x))
    return mlp.forward(ln_2.forward(h, to_matmul), h);                            // h + mlp(ln_2(h))
}

void ResidualAttentionBlock::visit(Visitor& v) {
    v.child("ln_1", ln_1);
    v.child("attn", attn);
    v.child("ln_2", ln_2);
    v.child("mlp", mlp);
}

Transformer::Transformer(int64_t width, int64_t layers, int64_t heads, int64_t mlp_hidden, Activation act,
                         double ln_eps, Generator& gen) {
    for (int64_t i = 0; i < layers; ++i)
        resblocks.push_back(
            std::make_unique<ResidualAttentionBlock>(width, heads, mlp_hidden, act, ln_eps, gen));
}

Tensor Transformer::forward(const Tensor& x, bool causal, std::vector<Tensor>* first_probs) const {
    Tensor h = x;
    for (const auto& block : resblocks) {
        if (grad_checkpointing && !first_probs) {
            ResidualAttentionBlock* b = block.get();
            h = checkpoint([b, causal](const Tensor& in) { return b->forward(in, causal, nullptr); }, h,
                           b->parameters());
            continue;
        }
        Tensor p;
        h = block->forward(h, causal, first_probs ? &p : nullptr);
        if (first_probs) first_probs->push_back(p);
    }
    return h;
}

void Transformer::visit(Visitor& v) {
    for (size_t i = 0; i < resblocks.size(); ++i) v.child("resblocks." + std::to_string(i), *resblocks[i]);
}

}  // namespace aclip
