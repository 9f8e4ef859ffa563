// text_transformer.h: the CLIP text tower: token and positional embeddings, causal pre-norm blocks with
// QuickGELU, ln_final, and the feature at the end-of-text token (the argmax of the ids) projected to
// the joint embedding. Names are OpenAI CLIP's (token_embedding.weight, transformer.resblocks.0...).
#pragma once
#include <cstdint>

#include "engine/nn/layers.h"

namespace aclip {

struct TextConfig {
    int64_t context = 77, vocab = 49408;
    int64_t width = 512, layers = 12, heads = 8, mlp_ratio = 4;
    int64_t embed_dim = 512;
    Activation act = Activation::QuickGELU;
    double ln_eps = 1e-5;
};

class TextTransformer : public Module {
  public:
    TextTransformer(const TextConfig& cfg, Generator& gen);
    // ids (B, C) with C <= context -> (B, E). blocks and projection default to this tower's own; A-CLIP's
    // EMA text path passes its copies and shares the embeddings and ln_final.
    Tensor forward(const Tensor& ids, const Transformer* blocks = nullptr,
                   const Tensor* projection = nullptr) const;
    void visit(Visitor& v) override;

    TextConfig cfg;
    Embedding token_embedding;    // (V, T)
    Tensor positional_embedding;  // (C, T)
    Transformer transformer;
    LayerNorm ln_final;
    Tensor text_projection;  // (T, E)
};

}  // namespace aclip
