// losses.h: the loss terms of CLIP and A-CLIP (aclip-method.md section 5), on one process's batch.
// (Across ranks the embeddings are gathered with gradient first; that arrives with the trainer's Comm.)
#pragma once
#include "engine/core/tensor.h"

namespace aclip {

// Symmetric InfoNCE: image (N, E), text (N, E) unnormalised; logit_scale [] is log(s). Row i matches i.
Tensor clip_loss(const Tensor& image_embed, const Tensor& text_embed, const Tensor& logit_scale);

// SLIP's SimCLR (NT-Xent) on a (N, D) and b (N, D) with temperature tau: each row's positive is the same
// row of the other view; negatives are every other row of both views.
Tensor simclr_loss(const Tensor& a, const Tensor& b, double tau);

// BYOL regression: mean over rows of 2 - 2 cos(pred_i, target_(i mod T)), pred (V*T, D), target (T, D)
// already detached (the EMA target is a stop-gradient).
Tensor byol_loss(const Tensor& pred, const Tensor& target);

}  // namespace aclip
