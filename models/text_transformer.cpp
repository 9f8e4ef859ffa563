// text_transformer.cpp: see text_transformer.h. Initialisation as OpenAI CLIP (aclip-method.md 1.5).
#include "models/text_transformer.h"

#include <cmath>

namespace aclip {

TextTransformer::TextTransformer(const TextConfig& c, Generator& gen)
    : cfg(c),
      token_embedding(c.vocab, c.width, gen),
      transformer(c.width, c.layers, c.heads, c.mlp_ratio * c.width, c.act, c.ln_eps, gen),
      ln_final(c.width, c.ln_eps) {
    const double W = static_cast<double>(c.width);
    init_normal(token_embedding.weight, gen, 0.0, 0.02);
    positional_embedding = empty({c.context, c.width}).requires_grad_();
    init_normal(positional_embedding, gen, 0.0, 0.01);
    const double attn_std = 1.0 / std::sqrt(W);
    const double proj_std = attn_std / std::sqrt(2.0 * static_cast<double>(c.layers));
    const double fc_std = 1.0 / std::sqrt(2.0 * W);
    for (auto& block : transformer.resblocks) {
        init_normal(block->attn.in_proj_weight, gen, 0.0, attn_std);
        init_normal(block->attn.out_proj.weight, gen, 0.0, proj_std);
        init_normal(block->mlp.c_fc.weight, gen, 0.0, fc_std);
        init_normal(block->mlp.c_proj.weight, gen, 0.0, proj_std);
    }
    text_projection = empty({c.width, c.embed_dim}).requires_grad_();
    init_normal(text_projection, gen, 0.0, attn_std);
}

Tensor TextTransformer::forward(const Tensor& ids, const Transformer* blocks,
                                const Tensor* projection) const {
    AC_CHECK(ids.dim() == 2 && ids.size(1) <= cfg.context && is_integral(ids.dtype()),
             "TextTransformer: ids must be integer (B, C) with C <= ", cfg.context, ", got ", ids.desc());
    const int64_t B = ids.size(0), C = ids.size(1), T = cfg.width;
    Tensor x = add(token_embedding.forward(ids), positional_embedding.narrow(0, 0, C));  // (B, C, T)
    x = (blocks ? *blocks : transformer).forward(x, true);
    x = ln_final.forward(x);
    Tensor eot = argmax(ids.to(DType::F32), -1);  // (B): the end-of-text token has the largest id
    Tensor pooled = gather_rows(x, eot.reshape({B, 1})).reshape({B, T});
    return matmul(pooled, projection ? *projection : text_projection);  // (B, E)
}

void TextTransformer::visit(Visitor& v) {
    v.child("token_embedding", token_embedding);
    v.param("positional_embedding", positional_embedding);
    v.child("transformer", transformer);
    v.child("ln_final", ln_final);
    v.param("text_projection", text_projection);
}

}  // namespace aclip
