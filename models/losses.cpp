// losses.cpp: see losses.h.
#include "models/losses.h"

#include "engine/ops/ops.h"

namespace aclip {

Tensor clip_loss(const Tensor& image_embed, const Tensor& text_embed, const Tensor& logit_scale) {
    AC_CHECK(image_embed.dim() == 2 && image_embed.shape() == text_embed.shape(), "clip_loss: image ",
             image_embed.desc(), " and text ", text_embed.desc(), " must both be (N, E)");
    const int64_t N = image_embed.size(0);
    Tensor img = l2_normalize(image_embed, -1), txt = l2_normalize(text_embed, -1);
    Tensor logits = mul(exp(logit_scale), matmul(img, txt.transpose(0, 1)));  // (N, N): image i vs text j
    Tensor labels = arange(N);
    return mul_scalar(add(cross_entropy(logits, labels), cross_entropy(logits.transpose(0, 1).contiguous(), labels)),
                      0.5);
}

Tensor simclr_loss(const Tensor& a, const Tensor& b, double tau) {
    AC_CHECK(a.dim() == 2 && a.shape() == b.shape(), "simclr_loss: ", a.desc(), " and ", b.desc(),
             " must both be (N, D)");
    const int64_t N = a.size(0);
    Tensor qa = l2_normalize(a, -1), qb = l2_normalize(b, -1);
    Tensor index = arange(N, DType::F32);
    Tensor eye_large =  // 1e9 on the diagonal: a row is not its own negative
        mul_scalar(equal(index.unsqueeze(1), index.unsqueeze(0)).to(a.dtype()), 1e9);
    auto logits = [&](const Tensor& x, const Tensor& y) { return mul_scalar(matmul(x, y.transpose(0, 1)), 1.0 / tau); };
    Tensor labels = arange(N);
    Tensor loss_a = cross_entropy(concat({logits(qa, qb), sub(logits(qa, qa), eye_large)}, 1), labels);
    Tensor loss_b = cross_entropy(concat({logits(qb, qa), sub(logits(qb, qb), eye_large)}, 1), labels);
    return mul_scalar(add(loss_a, loss_b), 0.5);
}

Tensor byol_loss(const Tensor& pred, const Tensor& target) {
    AC_CHECK(pred.dim() == 2 && target.dim() == 2 && pred.size(1) == target.size(1) &&
                 pred.size(0) % target.size(0) == 0,
             "byol_loss: pred ", pred.desc(), " must be (V*T, D) for target ", target.desc());
    const int64_t repeats = pred.size(0) / target.size(0);
    Tensor t = l2_normalize(target.detach(), -1);
    std::vector<Tensor> copies(repeats, t);
    Tensor cos = sum(mul(l2_normalize(pred, -1), concat(copies, 0)), {1});  // (V*T)
    return mean(add_scalar(mul_scalar(cos, -2.0), 2.0));
}

}  // namespace aclip
