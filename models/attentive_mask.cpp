// attentive_mask.cpp: see attentive_mask.h. Runs without gradient: the mask is a decision, not a function
// to differentiate.
#include "models/attentive_mask.h"

#include <algorithm>

#include "engine/autograd/grad_mode.h"
#include "engine/math/philox.h"
#include "engine/ops/ops.h"

namespace aclip {

int64_t kept_blocks(const MaskConfig& c) {
    const int64_t squares = (c.grid / c.block) * (c.grid / c.block);
    return std::min<int64_t>(squares, static_cast<int64_t>(squares * c.keep_ratio) + 1);
}

int64_t kept_patches(const MaskConfig& c) {
    return kept_blocks(c) * c.block * c.block;
}

Tensor view_score_map(const Tensor& score_row, const int64_t* e, const int64_t* o, int64_t G) {
    NoGradGuard no_grad;
    // e, o: (top, left, height, width)
    Tensor map = resize_bilinear(score_row.reshape({1, 1, G, G}), e[2], e[3]);       // (1, 1, Eh, Ew)
    Tensor crop = zeros({1, 1, o[2], o[3]}, score_row.dtype(), score_row.device());  // zero outside the box
    const int64_t top = o[0] - e[0], left = o[1] - e[1];
    const int64_t r0 = std::max<int64_t>(top, 0), r1 = std::min<int64_t>(top + o[2], e[2]);
    const int64_t c0 = std::max<int64_t>(left, 0), c1 = std::min<int64_t>(left + o[3], e[3]);
    if (r1 > r0 && c1 > c0)
        crop.narrow(2, r0 - top, r1 - r0)
            .narrow(3, c0 - left, c1 - c0)
            .copy_(map.narrow(2, r0, r1 - r0).narrow(3, c0, c1 - c0));
    return resize_bilinear(crop, G, G).reshape({G, G});
}

Tensor attentive_keep(const Tensor& score, const Tensor& boxes, int view, const MaskConfig& c) {
    const int64_t G = c.grid, B = score.size(0), S = G / c.block;
    AC_CHECK(score.dim() == 2 && score.size(1) == G * G, "attentive_keep: score must be (B, ", G * G,
             "), got ", score.desc());
    AC_CHECK(boxes.dim() == 3 && boxes.size(0) == B && boxes.size(1) == 3 && boxes.size(2) == 4,
             "attentive_keep: boxes must be (B, 3, 4), got ", boxes.desc());
    AC_CHECK(view == 0 || view == 1, "attentive_keep: view must be 0 or 1");
    AC_CHECK(G % c.block == 0, "attentive_keep: block ", c.block, " does not divide the grid ", G);
    NoGradGuard no_grad;
    std::vector<int64_t> bx = boxes.to_vector<int64_t>();
    const int64_t keep = kept_blocks(c);
    // Each sample's square scores, on the score's device (the boxes differ per sample, so the maps are
    // resampled one by one); then one top-k over the batch and one read-back, not one per sample.
    std::vector<Tensor> squares;
    for (int64_t b = 0; b < B; ++b) {
        const int64_t* e = &bx[(b * 3 + 2) * 4];
        const int64_t* o = &bx[(b * 3 + view) * 4];
        AC_CHECK(e[2] > 0 && e[3] > 0 && o[2] > 0 && o[3] > 0, "attentive_keep: sample ", b,
                 " has an empty box");
        Tensor map = view_score_map(score.select(0, b), e, o, G);
        squares.push_back(avg_pool2d(map.reshape({1, 1, G, G}), c.block).reshape({S * S}));
    }
    std::vector<int64_t> tops = topk(stack(squares, 0), keep).second.to_vector<int64_t>();  // (B, keep)
    std::vector<int64_t> out;
    out.reserve(B * keep * c.block * c.block);
    for (int64_t b = 0; b < B; ++b) {
        std::vector<int64_t> top(tops.begin() + b * keep, tops.begin() + (b + 1) * keep);
        std::vector<int64_t> patches;
        for (int64_t sq : top)
            for (int64_t dy = 0; dy < c.block; ++dy)
                for (int64_t dx = 0; dx < c.block; ++dx)
                    patches.push_back(((sq / S) * c.block + dy) * G + (sq % S) * c.block + dx);
        std::sort(patches.begin(), patches.end());
        out.insert(out.end(), patches.begin(), patches.end());
    }
    return from_vector(out, {B, keep * c.block * c.block}).to(score.device());
}

Tensor random_keep(int64_t B, int64_t N, double keep_ratio, uint64_t seed, uint64_t offset) {
    const int64_t K = static_cast<int64_t>(N * keep_ratio);
    AC_CHECK(K >= 1 && K <= N, "random_keep: keep ratio ", keep_ratio, " keeps ", K, " of ", N, " patches");
    std::vector<float> noise(B * N);
    for (int64_t i = 0; i < B * N; ++i) noise[i] = uniform_from_word(philox_word(seed, offset, i));
    NoGradGuard no_grad;
    std::vector<int64_t> order = argsort(from_vector(noise, {B, N})).to_vector<int64_t>();
    std::vector<int64_t> out;
    for (int64_t b = 0; b < B; ++b) {
        std::vector<int64_t> kept(order.begin() + b * N, order.begin() + b * N + K);
        std::sort(kept.begin(), kept.end());
        out.insert(out.end(), kept.begin(), kept.end());
    }
    return from_vector(out, {B, K});
}

}  // namespace aclip
