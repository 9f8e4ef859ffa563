// vit.h: the Vision Transformer image tower of CLIP / A-CLIP.
// Patch embedding as patchify + matmul (no conv), CLS token, learned positional embedding, optional
// ln_pre (OpenAI's variant), pre-norm blocks, ln_post on the CLS token, and the projection to the joint
// embedding. Parameter names are OpenAI CLIP's (visual.conv1.weight, visual.transformer.resblocks.0...).
// The forward can drop patches (A-CLIP's attentive mask, FLIP's random mask): positional embeddings are
// added to all patches, the kept ones are gathered, then CLS is prepended. It can also return the CLS
// row of the attention over patch keys, averaged over layers and heads (the attentive-mask score).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/nn/layers.h"

namespace aclip {

struct VisionConfig {
    int64_t image_size = 224, patch_size = 16;
    int64_t width = 768, layers = 12, heads = 12, mlp_ratio = 4;
    int64_t embed_dim = 512;
    Activation act = Activation::GELU;
    double ln_eps = 1e-6;
    bool ln_pre = false;       // OpenAI CLIP applies a LayerNorm before the blocks
    bool patch_bias = true;    // timm's patch embedding has a bias; OpenAI's has none
    bool freeze_patch = true;  // A-CLIP keeps the patch embedding at its random init
    int64_t grid() const { return image_size / patch_size; }
    int64_t num_patches() const { return grid() * grid(); }
};

struct VisionOutput {
    Tensor cls;       // (B, W): the CLS token after ln_post (what the SSL heads read)
    Tensor embed;     // (B, E): cls @ proj
    Tensor attn_cls;  // (B, K): mean over layers and heads of softmax(q_cls Kᵀ) over patch keys (if asked)
    std::vector<Tensor> attn_cls_layers;  // per layer, (B, H, K): the CLS row over patch keys (if asked)
};

class VisionTransformer : public Module {
  public:
    VisionTransformer(const VisionConfig& cfg, Generator& gen);
    // images (B, 3, S, S); keep (B, K) i64 patch indices to keep, or undefined for all patches.
    VisionOutput forward(const Tensor& images, const Tensor& keep = {}, bool want_attention = false) const;
    void visit(Visitor& v) override;

    VisionConfig cfg;
    Tensor conv1_weight, conv1_bias;  // (W, 3, P, P), (W)
    Tensor class_embedding;           // (W)
    Tensor positional_embedding;      // (1 + N, W)
    std::unique_ptr<LayerNorm> ln_pre;
    Transformer transformer;
    LayerNorm ln_post;
    Tensor proj;  // (W, E)
};

// (B, 3, S, S) -> (B, N, 3*P*P), patches in row-major order, each flattened as (channel, row, col).
Tensor patchify(const Tensor& images, int64_t patch_size);

}  // namespace aclip
