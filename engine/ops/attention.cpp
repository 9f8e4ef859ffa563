// attention.cpp: scaled dot-product attention, self-attention of a packed projection, dropout and
// l2_normalize. They are composed from engine ops, so autograd derives their backward (self_attention
// records the composed attention as one op, with the same products written out, to return one packed
// gradient), and the composed attention is the specification the fused CUDA kernels
// (engine/cuda/attention.cu) are tested against.
// Which attention the GPU runs: bf16 always takes the fused kernels, which run on the tensor cores
// (engine/cuda/attention_mma.cu). f32 takes the composed one (two batched cuBLASLt products around the
// softmax kernel) up to kComposedMaxKeys keys and the fused f32 kernels beyond: measured on an H200 at
// (32, 12, 197, 64), forward + backward, composed 0.60 ms against 2.62 ms for the f32 kernels, which use
// no tensor cores (docs/GPU_STATUS.md, run 3). fused_attention() runs the fused kernels whatever the
// length and dtype.
#include <cmath>

#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/cuda/cuda_ops.h"
#include "engine/math/philox.h"
#include "engine/ops/autocast.h"
#include "engine/ops/ops.h"

namespace aclip {

namespace {

constexpr int64_t kComposedMaxKeys = 1024;

}  // namespace

Tensor fused_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal) {
    if (common_device("fused_attention", {&q, &k, &v}) != Device::CUDA ||
        !cuda::flash_attention_supports(q.size(3)))
        return scaled_dot_product_attention(q, k, v, causal).out;
    const int64_t B = q.size(0), H = q.size(1), Tq = q.size(2);
    // The tensor-core kernels read strided views as they are; the f32 kernels need contiguous tensors.
    const bool views = cuda::flash_attention_takes_views(q, k, v);
    Tensor qc = (views ? q : q.contiguous()).detach(), kc = (views ? k : k.contiguous()).detach(),
           vc = (views ? v : v.contiguous()).detach();
    Tensor out = empty(q.shape(), q.dtype(), Device::CUDA);
    Tensor lse = empty({B, H, Tq}, DType::F32, Device::CUDA);
    cuda::flash_attention_forward(qc, kc, vc, causal, out, lse);
    if (!needs_grad({q, k, v})) return out;
    SavedTensor sq(qc, "attention"), sk(kc, "attention"), sv(vc, "attention"), so(out, "attention");
    return record("fused_attention", out, {q, k, v}, [=](const Tensor& g) {
        const Tensor &qs = sq.get(), &ks = sk.get(), &vs = sv.get();
        Tensor dq = empty(qs.shape(), qs.dtype(), Device::CUDA),
               dk = empty(ks.shape(), ks.dtype(), Device::CUDA),
               dv = empty(vs.shape(), vs.dtype(), Device::CUDA);
        cuda::flash_attention_backward(qs, ks, vs, so.get(), lse, g.contiguous(), causal, dq, dk, dv);
        return std::vector<Tensor>{dq, dk, dv};
    });
}

Tensor packed_heads(const Tensor& qkv, int64_t heads, int64_t which) {
    AC_CHECK(qkv.dim() == 3 && heads > 0 && qkv.size(2) % (3 * heads) == 0 && which >= 0 && which < 3,
             "packed_heads: qkv must be (B, T, 3W) with W divisible by ", heads, " heads (part ", which,
             " of 0, 1, 2), got ", qkv.desc());
    const int64_t B = qkv.size(0), T = qkv.size(1), D = qkv.size(2) / (3 * heads);
    return qkv.view({B, T, 3, heads, D}).select(2, which).permute({0, 2, 1, 3});
}

namespace {

// self_attention by the composed attention (scaled scores, softmax, product) on views of qkv, recorded as
// one op: its backward writes the gradients of q, k and v straight into one packed (B, T, 3W) gradient.
// Recorded op by op instead, the three selects of q, k and v would each give qkv a zero-filled
// (B, T, 3W) gradient, to be added up: three fills and two sums of the whole projection per layer.
Tensor composed_self_attention(const Tensor& qkv, int64_t heads, bool causal) {
    const int64_t B = qkv.size(0), T = qkv.size(1), W = qkv.size(2) / 3, D = W / heads;
    auto heads_of = [heads](const Tensor& packed, int64_t which) {  // (B, H, T, D) views
        return packed_heads(packed, heads, which);
    };
    const bool grad = needs_grad({qkv});
    AttentionResult r;
    {
        NoGradGuard no_grad;
        const Tensor packed = qkv.detach();
        // the probabilities are kept for backward
        r = scaled_dot_product_attention(heads_of(packed, 0), heads_of(packed, 1), heads_of(packed, 2),
                                         causal, grad);
    }
    Tensor out = r.out.permute({0, 2, 1, 3}).reshape({B, T, W});
    if (!grad) return out;
    const double scale = 1.0 / std::sqrt(static_cast<double>(D));  // the scores are (q scale) k^T
    SavedTensor sqkv(qkv.detach(), "self_attention"), sprobs(r.probs, "self_attention");
    return record("self_attention", out, {qkv}, [=](const Tensor& g) {
        const Tensor packed = sqkv.get(), probs = sprobs.get().to(packed.dtype());  // (B, H, T, T)
        const Tensor q = heads_of(packed, 0), k = heads_of(packed, 1), v = heads_of(packed, 2);
        const Tensor go =
            g.to(packed.dtype()).reshape({B, T, heads, D}).permute({0, 2, 1, 3});    // (B, H, T, D)
        const Tensor ds = softmax_backward(probs, matmul(go, v.transpose(-2, -1)));  // of the scores
        Tensor dqkv = empty(packed.shape(), packed.dtype(), packed.device());  // every element written below
        heads_of(dqkv, 0).copy_(mul_scalar(matmul(ds, k), scale));
        heads_of(dqkv, 1).copy_(mul_scalar(matmul(ds.transpose(-2, -1), q), scale));
        heads_of(dqkv, 2).copy_(matmul(probs.transpose(-2, -1), go));
        return std::vector<Tensor>{dqkv};
    });
}

}  // namespace

Tensor self_attention(const Tensor& qkv, int64_t heads, bool causal) {
    AC_CHECK(qkv.dim() == 3 && heads > 0 && qkv.size(2) % (3 * heads) == 0,
             "self_attention: qkv must be (B, T, 3W) with W divisible by ", heads, " heads, got ",
             qkv.desc());
    const int64_t B = qkv.size(0), T = qkv.size(1), W = qkv.size(2) / 3, D = W / heads;
    auto heads_of = [heads](const Tensor& packed, int64_t which) {
        return packed_heads(packed, heads, which);
    };
    const Tensor q = heads_of(qkv, 0), k = heads_of(qkv, 1), v = heads_of(qkv, 2);
    if (qkv.device() != Device::CUDA) return composed_self_attention(qkv, heads, causal);
    if (!cuda::flash_attention_takes_views(q, k, v)) {
        if (T > kComposedMaxKeys && cuda::flash_attention_supports(D))  // f32, long: the fused kernels
            return fused_attention(q, k, v, causal).permute({0, 2, 1, 3}).reshape({B, T, W});
        return composed_self_attention(qkv, heads, causal);
    }
    Tensor out = empty({B, T, W}, qkv.dtype(), Device::CUDA);
    Tensor lse = empty({B, heads, T}, DType::F32, Device::CUDA);
    auto out_heads = [B, T, heads, D](const Tensor& o) {  // (B, T, W) -> (B, H, T, D)
        return o.view({B, T, heads, D}).permute({0, 2, 1, 3});
    };
    cuda::flash_attention_forward(q, k, v, causal, out_heads(out), lse);  // kernels: nothing is recorded
    if (!needs_grad({qkv})) return out;
    SavedTensor sqkv(qkv.detach(), "self_attention"), so(out, "self_attention");
    return record("self_attention", out, {qkv}, [=](const Tensor& g) {
        const Tensor packed = sqkv.get(), o = out_heads(so.get()), gh = out_heads(g.contiguous());
        Tensor dqkv = empty(packed.shape(), packed.dtype(), Device::CUDA);  // every element written below
        cuda::flash_attention_backward(heads_of(packed, 0), heads_of(packed, 1), heads_of(packed, 2), o, lse,
                                       gh, causal, heads_of(dqkv, 0), heads_of(dqkv, 1), heads_of(dqkv, 2));
        return std::vector<Tensor>{dqkv};
    });
}

AttentionResult scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal,
                                             bool return_probs) {
    AC_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
             "scaled_dot_product_attention: q, k, v must be "
             "(B, H, T, D), got ",
             q.desc(), ", ", k.desc(), ", ", v.desc());
    AC_CHECK(
        q.size(0) == k.size(0) && q.size(1) == k.size(1) && q.size(3) == k.size(3) && k.shape() == v.shape(),
        "scaled_dot_product_attention: shapes do not agree: q ", q.desc(), ", k ", k.desc(), ", v ",
        v.desc());
    AC_CHECK(q.dtype() == k.dtype() && k.dtype() == v.dtype(),
             "scaled_dot_product_attention: dtypes differ: ", q.desc(), ", ", k.desc(), ", ", v.desc());
    const int64_t Tq = q.size(2), Tk = k.size(2);
    if (common_device("scaled_dot_product_attention", {&q, &k, &v}) == Device::CUDA && !return_probs &&
        cuda::flash_attention_supports(q.size(3)) &&
        ((q.dtype() == DType::BF16 && cuda::tensor_core_attention()) || Tk > kComposedMaxKeys))
        return AttentionResult{fused_attention(q, k, v, causal), Tensor()};
    const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
    // q is scaled before the product: a (Tq, D) pass instead of a (Tq, Tk) one, forward and backward.
    Tensor scores = matmul(mul_scalar(q, scale), k.transpose(-2, -1));  // (B, H, Tq, Tk)
    if (causal) {
        std::vector<uint8_t> mask(Tq * Tk);  // query i sees keys j <= i
        for (int64_t i = 0; i < Tq; ++i)
            for (int64_t j = 0; j < Tk; ++j) mask[i * Tk + j] = j > i;
        scores = masked_fill(scores, from_vector(mask, {Tq, Tk}).to(q.device()), -INFINITY);
    }
    Tensor probs = softmax(scores, -1);
    AttentionResult r;
    r.out = matmul(probs, v);  // (B, H, Tq, D)
    if (return_probs) r.probs = probs;
    return r;
}

Tensor dropout(const Tensor& x, double p, uint64_t seed, uint64_t offset, bool training) {
    AC_CHECK(p >= 0 && p < 1, "dropout: p = ", p, " must be in [0, 1)");
    if (!training || p == 0) return x;
    const int64_t n = x.numel();
    Tensor keep_scale = empty(x.shape(), x.dtype(), x.device());  // 0 where dropped, 1/(1-p) where kept
    if (x.device() == Device::CUDA) {
        cuda::dropout_scale(keep_scale, p, seed, offset);
        return mul(x, keep_scale);
    }
    dispatch_float(x.dtype(), "dropout", [&](auto tag) {
        using T = typename decltype(tag)::type;
        T* s = keep_scale.data<T>();
        const T kept = store_as<T>(1.0 / (1.0 - p));
        for (int64_t i = 0; i < n; ++i)
            s[i] = uniform_from_word(philox_word(seed, offset, i)) >= p ? kept : store_as<T>(0.0);
    });
    return mul(x, keep_scale);
}

Tensor attention_cls_probs(const Tensor& q, const Tensor& k) {
    AC_CHECK(q.dim() == 4 && k.dim() == 4 && q.size(0) == k.size(0) && q.size(1) == k.size(1) &&
                 q.size(3) == k.size(3) && q.size(2) >= 1,
             "attention_cls_probs: q (B, H, Tq, D) and k (B, H, Tk, D) do not agree: ", q.desc(), ", ",
             k.desc());
    NoGradGuard no_grad;
    if (common_device("attention_cls_probs", {&q, &k}) == Device::CUDA) {
        Tensor probs = empty({q.size(0), q.size(1), k.size(2)}, q.dtype(), Device::CUDA);
        // views whose last dim is contiguous are read in place
        auto last_dim_contiguous = [](const Tensor& t) { return t.strides()[3] == 1 ? t : t.contiguous(); };
        cuda::attention_cls_probs(last_dim_contiguous(q), last_dim_contiguous(k), probs);
        return probs;
    }
    const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
    // As the composed attention computes it: q scaled before the product.
    Tensor scores = matmul(mul_scalar(q.narrow(2, 0, 1), scale), k.transpose(-2, -1));  // (B, H, 1, Tk)
    return softmax(scores, -1).squeeze(2);
}

Tensor l2_normalize(const Tensor& x_in, int64_t dim, double eps) {
    const Tensor x = autocast_to_f32(x_in);
    // x / max(||x||, eps), with the clamp before the sqrt so a zero vector has a finite gradient.
    Tensor sq = sum(mul(x, x), {dim}, true);
    return div(x, sqrt(clamp(sq, eps * eps, std::nullopt)));
}

}  // namespace aclip
