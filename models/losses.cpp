// losses.cpp: see losses.h.
#include "models/losses.h"

#include "engine/ops/ops.h"

namespace aclip {

namespace {

LocalComm g_local;

// Every rank's rows of x, with gradient; x itself when alone.
Tensor gathered(const Tensor& x, Comm& comm) {
    return comm.world() == 1 ? x : all_gather_with_grad(x, comm);
}

// Labels of this rank's B rows within the global batch: rank * B + i, on the features' device.
Tensor global_labels(int64_t B, const Comm& comm, Device device) {
    return add_scalar(arange(B, DType::F32), static_cast<double>(comm.rank() * B)).to(DType::I64).to(device);
}

}  // namespace

Tensor clip_loss(const Tensor& image_embed, const Tensor& text_embed, const Tensor& logit_scale, Comm* comm) {
    AC_CHECK(image_embed.dim() == 2 && image_embed.shape() == text_embed.shape(), "clip_loss: image ",
             image_embed.desc(), " and text ", text_embed.desc(), " must both be (B, E)");
    Comm& c = comm ? *comm : g_local;
    const int64_t B = image_embed.size(0);
    Tensor img = l2_normalize(image_embed, -1), txt = l2_normalize(text_embed, -1);  // (B, E)
    Tensor scale = exp(logit_scale);
    Tensor per_image =
        mul(scale, matmul(img, gathered(txt, c).transpose(0, 1)));  // (B, G): image i vs all texts
    Tensor per_text =
        mul(scale, matmul(txt, gathered(img, c).transpose(0, 1)));  // (B, G): text i vs all images
    Tensor labels = global_labels(B, c, image_embed.device());
    return mul_scalar(add(cross_entropy(per_image, labels), cross_entropy(per_text, labels)), 0.5);
}

Tensor simclr_loss(const Tensor& a, const Tensor& b, double tau, Comm* comm) {
    AC_CHECK(a.dim() == 2 && a.shape() == b.shape(), "simclr_loss: ", a.desc(), " and ", b.desc(),
             " must both be (B, D)");
    Comm& c = comm ? *comm : g_local;
    const int64_t B = a.size(0);
    Tensor qa = l2_normalize(a, -1), qb = l2_normalize(b, -1);  // (B, D)
    Tensor ka = gathered(qa, c), kb = gathered(qb, c);          // (G, D)
    Tensor labels = global_labels(B, c, a.device());
    // 1e9 at (i, label_i): a row is not its own negative
    Tensor self = mul_scalar(
        equal(labels.to(DType::F32).unsqueeze(1), arange(ka.size(0), DType::F32).to(a.device()).unsqueeze(0))
            .to(a.dtype()),
        1e9);
    auto logits = [&](const Tensor& q, const Tensor& k) {
        return mul_scalar(matmul(q, k.transpose(0, 1)), 1.0 / tau);
    };
    Tensor loss_a = cross_entropy(concat({logits(qa, kb), sub(logits(qa, ka), self)}, 1), labels);
    Tensor loss_b = cross_entropy(concat({logits(qb, ka), sub(logits(qb, kb), self)}, 1), labels);
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
