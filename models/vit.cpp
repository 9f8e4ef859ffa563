// vit.cpp: see vit.h.
#include "models/vit.h"

#include <cmath>

#include "engine/autograd/grad_mode.h"

namespace aclip {

Tensor patchify(const Tensor& images, int64_t P) {
    AC_CHECK(images.dim() == 4 && images.size(1) == 3, "patchify: images must be (B, 3, S, S), got ",
             images.desc());
    const int64_t B = images.size(0), H = images.size(2), W = images.size(3);
    AC_CHECK(H % P == 0 && W % P == 0, "patchify: image size ", H, "x", W,
             " is not a multiple of the patch size ", P);
    return images.view({B, 3, H / P, P, W / P, P})
        .permute({0, 2, 4, 1, 3, 5})  // (B, H/P, W/P, 3, P, P)
        .reshape({B, (H / P) * (W / P), 3 * P * P});
}

VisionTransformer::VisionTransformer(const VisionConfig& c, Generator& gen)
    : cfg(c),
      transformer(c.width, c.layers, c.heads, c.mlp_ratio * c.width, c.act, c.ln_eps, gen),
      ln_post(c.width, c.ln_eps) {
    AC_CHECK(c.image_size % c.patch_size == 0, "VisionConfig: image_size ", c.image_size,
             " is not a multiple of patch_size ", c.patch_size);
    const int64_t W = c.width, P = c.patch_size, N = c.num_patches();
    // Patch embedding: PyTorch's Conv2d default, U(+-1/sqrt(3 P^2)), weight and bias.
    conv1_weight = empty({W, 3, P, P});
    init_fan_in_uniform(conv1_weight, gen, 3 * P * P);
    if (c.patch_bias) {
        conv1_bias = empty({W});
        init_fan_in_uniform(conv1_bias, gen, 3 * P * P);
    }
    if (!c.freeze_patch) {
        conv1_weight.requires_grad_();
        if (conv1_bias.defined()) conv1_bias.requires_grad_();
    }
    // timm: CLS token and positional embedding N(0, 0.02) (truncated at +-2 absolute, i.e. not at all).
    class_embedding = empty({W}).requires_grad_();
    init_normal(class_embedding, gen, 0.0, 0.02);
    positional_embedding = empty({1 + N, W}).requires_grad_();
    init_normal(positional_embedding, gen, 0.0, 0.02);
    if (c.ln_pre) ln_pre = std::make_unique<LayerNorm>(W, c.ln_eps);
    // timm: every Linear weight N(0, 0.02), biases 0.
    for (auto& block : transformer.resblocks) {
        for (Tensor* w : {&block->attn.in_proj_weight, &block->attn.out_proj.weight, &block->mlp.c_fc.weight,
                          &block->mlp.c_proj.weight})
            init_normal(*w, gen, 0.0, 0.02);
        for (Tensor* b : {&block->attn.in_proj_bias, &block->attn.out_proj.bias, &block->mlp.c_fc.bias,
                          &block->mlp.c_proj.bias})
            init_zeros(*b);
    }
    proj = empty({W, c.embed_dim}).requires_grad_();
    init_normal(proj, gen, 0.0, 1.0 / std::sqrt(static_cast<double>(W)));
}

VisionOutput VisionTransformer::forward(const Tensor& images, const Tensor& keep, bool want_attention) const {
    const int64_t B = images.size(0), W = cfg.width, N = cfg.num_patches();
    AC_CHECK(images.dim() == 4 && images.size(2) == cfg.image_size && images.size(3) == cfg.image_size,
             "VisionTransformer: images must be (B, 3, ", cfg.image_size, ", ", cfg.image_size, "), got ",
             images.desc());
    Tensor x =
        linear(patchify(images, cfg.patch_size), conv1_weight.reshape({W, -1}), conv1_bias);  // (B, N, W)
    x = add(x, positional_embedding.narrow(0, 1, N));
    if (keep.defined()) {
        AC_CHECK(keep.dim() == 2 && keep.size(0) == B, "VisionTransformer: keep must be (B, K) indices, got ",
                 keep.desc());
        x = gather_rows(x, keep);  // (B, K, W)
    }
    Tensor cls = add(class_embedding, positional_embedding.select(0, 0)).reshape({1, 1, W}).expand({B, 1, W});
    x = concat({cls, x}, 1);  // (B, 1 + K, W)
    if (ln_pre) x = ln_pre->forward(x);
    std::vector<Tensor> probs;
    x = transformer.forward(x, false, want_attention ? &probs : nullptr);
    VisionOutput out;
    out.cls = ln_post.forward(x.select(1, 0));  // (B, W)
    out.embed = matmul(out.cls, proj);          // (B, E)
    if (want_attention) {
        Tensor total;
        for (const Tensor& p : probs) {  // p (B, H, T): the CLS query's row; keys 1.. are patches
            out.attn_cls_layers.push_back(p.narrow(2, 1, p.size(2) - 1));  // (B, H, K)
            Tensor row = mean(out.attn_cls_layers.back(), {1});            // (B, K)
            total = total.defined() ? add(total, row) : row;
        }
        out.attn_cls = mul_scalar(total, 1.0 / static_cast<double>(probs.size()));
    }
    return out;
}

void VisionTransformer::visit(Visitor& v) {
    v.param("conv1.weight", conv1_weight);
    v.param("conv1.bias", conv1_bias);
    v.param("class_embedding", class_embedding);
    v.param("positional_embedding", positional_embedding);
    if (ln_pre) v.child("ln_pre", *ln_pre);
    v.child("transformer", transformer);
    v.child("ln_post", ln_post);
    v.param("proj", proj);
}

}  // namespace aclip
