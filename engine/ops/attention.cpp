// attention.cpp: scaled dot-product attention, dropout and l2_normalize, composed from engine ops so
// that autograd derives their backward. They are the CPU specification for the fused CUDA kernels.
#include <cmath>

#include "engine/autograd/grad_mode.h"
#include "engine/math/philox.h"
#include "engine/ops/ops.h"

namespace aclip {

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
    const int64_t Tq = q.size(2), Tk = k.size(2);
    const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
    Tensor scores = mul_scalar(matmul(q, k.transpose(-2, -1)), scale);  // (B, H, Tq, Tk)
    if (causal) {
        std::vector<uint8_t> mask(Tq * Tk);  // query i sees keys j <= i
        for (int64_t i = 0; i < Tq; ++i)
            for (int64_t j = 0; j < Tk; ++j) mask[i * Tk + j] = j > i;
        scores = masked_fill(scores, from_vector(mask, {Tq, Tk}), -INFINITY);
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
    Tensor keep_scale = empty(x.shape(), x.dtype());  // 0 where dropped, 1/(1-p) where kept
    dispatch_float(x.dtype(), "dropout", [&](auto tag) {
        using T = typename decltype(tag)::type;
        T* s = keep_scale.data<T>();
        const T kept = store_as<T>(1.0 / (1.0 - p));
        for (int64_t i = 0; i < n; ++i)
            s[i] = uniform_from_word(philox_word(seed, offset, i)) >= p ? kept : store_as<T>(0.0);
    });
    return mul(x, keep_scale);
}

Tensor l2_normalize(const Tensor& x, int64_t dim, double eps) {
    // x / max(||x||, eps), with the clamp before the sqrt so a zero vector has a finite gradient.
    Tensor sq = sum(mul(x, x), {dim}, true);
    return div(x, sqrt(clamp(sq, eps * eps, std::nullopt)));
}

}  // namespace aclip
