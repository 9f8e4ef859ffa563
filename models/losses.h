// losses.h: the loss terms of CLIP and A-CLIP (aclip-method.md section 5). Each rank passes its own rows;
// with a communicator of world > 1 the contrastive losses gather every rank's embeddings with gradient
// (all_gather_with_grad), so each local row is contrasted with the global batch, and row i of rank r has
// label r * B + i. Averaging the ranks' gradients then gives the gradient of the global loss.
#pragma once
#include "engine/core/tensor.h"
#include "engine/dist/comm.h"

namespace aclip {

// Symmetric InfoNCE: image (B, E), text (B, E) unnormalised; logit_scale [] is log(s).
Tensor clip_loss(const Tensor& image_embed, const Tensor& text_embed, const Tensor& logit_scale,
                 Comm* comm = nullptr);

// SLIP's SimCLR (NT-Xent) on a (B, D) and b (B, D) with temperature tau: each row's positive is the same
// row of the other view; negatives are every other row of both views, over the global batch.
Tensor simclr_loss(const Tensor& a, const Tensor& b, double tau, Comm* comm = nullptr);

// BYOL regression: mean over rows of 2 - 2 cos(pred_i, target_(i mod T)), pred (V*T, D), target (T, D)
// already detached (the EMA target is a stop-gradient). Local: no communication.
Tensor byol_loss(const Tensor& pred, const Tensor& target);

}  // namespace aclip
