// attentive_mask.cpp: see attentive_mask.h. Runs without gradient: the mask is a decision, not a function
// to differentiate.
#include "models/attentive_mask.h"

#include <algorithm>

#include "engine/autograd/grad_mode.h"
#include "engine/cpu/strided_loop.h"
#include "engine/math/bilinear.h"
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

namespace {

// The view's (G, G) score map of one sample, computed as the official code does (score resized to the EMA
// box, the view's box cut out with zeros outside, resized back) but lazily: the second resize reads the cut
// at most 2G rows and 2G columns, and only those values of the first resize are computed. Each value is
// rounded to T where the two-stage resize stores it, so the map equals that of the engine's resize ops
// bit for bit. score: G * G values; e, o: (top, left, height, width) of the EMA box and the view's box.
template <class T>
void score_map(const T* score, const int64_t* e, const int64_t* o, int64_t G, T* map) {
    const int64_t top = o[0] - e[0], left = o[1] - e[1];  // the cut's origin in the resized map
    auto cut = [&](int64_t y, int64_t x, const BilinearTap& ry, const BilinearTap& rx) -> double {
        const int64_t r = y + top, c = x + left;  // ry, rx: the first resize's taps of row r, column c
        if (r < 0 || r >= e[2] || c < 0 || c >= e[3]) return 0.0;  // outside the EMA box
        return load(store_as<T>(bilinear_mix(load(score[ry.i0 * G + rx.i0]), load(score[ry.i0 * G + rx.i1]),
                                             load(score[ry.i1 * G + rx.i0]), load(score[ry.i1 * G + rx.i1]),
                                             ry.w1, rx.w1)));
    };
    auto first_tap = [G](int64_t at, int64_t size) {  // tap of the first resize (G -> size) at a map index
        return at >= 0 && at < size ? bilinear_tap(at, G, size) : BilinearTap{0, 0, 0.0};
    };
    std::vector<BilinearTap> ty(G), tx(G), ry0(G), ry1(G), rx0(G), rx1(G);
    for (int64_t i = 0; i < G; ++i) {
        ty[i] = bilinear_tap(i, o[2], G), tx[i] = bilinear_tap(i, o[3], G);  // the second resize
        ry0[i] = first_tap(ty[i].i0 + top, e[2]), ry1[i] = first_tap(ty[i].i1 + top, e[2]);
        rx0[i] = first_tap(tx[i].i0 + left, e[3]), rx1[i] = first_tap(tx[i].i1 + left, e[3]);
    }
    for (int64_t i = 0; i < G; ++i)
        for (int64_t j = 0; j < G; ++j)
            map[i * G + j] = store_as<T>(
                bilinear_mix(cut(ty[i].i0, tx[j].i0, ry0[i], rx0[j]), cut(ty[i].i0, tx[j].i1, ry0[i], rx1[j]),
                             cut(ty[i].i1, tx[j].i0, ry1[i], rx0[j]), cut(ty[i].i1, tx[j].i1, ry1[i], rx1[j]),
                             ty[i].w1, tx[j].w1));
}

// Mean of each block x block square of a (G, G) map, as avg_pool2d computes it.
template <class T>
void square_means(const T* map, int64_t G, int64_t block, T* squares) {
    const int64_t S = G / block;
    const double inv = 1.0 / static_cast<double>(block * block);
    for (int64_t y = 0; y < S; ++y)
        for (int64_t x = 0; x < S; ++x) {
            double s = 0;
            for (int64_t dy = 0; dy < block; ++dy)
                for (int64_t dx = 0; dx < block; ++dx) s += load(map[(y * block + dy) * G + x * block + dx]);
            squares[y * S + x] = store_as<T>(s * inv);
        }
}

void check_boxes(const int64_t* e, const int64_t* o, int64_t sample) {
    AC_CHECK(e[2] > 0 && e[3] > 0 && o[2] > 0 && o[3] > 0, "attentive_keep: sample ", sample,
             " has an empty box");
}

}  // namespace

Tensor view_score_map(const Tensor& score_row, const int64_t* e, const int64_t* o, int64_t G) {
    AC_CHECK(score_row.numel() == G * G, "view_score_map: the score must hold ", G * G, " values, got ",
             score_row.desc());
    check_boxes(e, o, 0);
    const Tensor score = score_row.detach().to(Device::CPU).contiguous();
    Tensor map = empty({G, G}, score.dtype());
    dispatch_float(score.dtype(), "view_score_map", [&](auto tag) {
        using T = typename decltype(tag)::type;
        score_map<T>(score.data<T>(), e, o, G, map.data<T>());
    });
    return map.to(score_row.device());
}

Tensor attentive_keep(const Tensor& score_in, const Tensor& boxes, int view, const MaskConfig& c) {
    const int64_t G = c.grid, B = score_in.size(0), S = G / c.block;
    AC_CHECK(score_in.dim() == 2 && score_in.size(1) == G * G, "attentive_keep: score must be (B, ", G * G,
             "), got ", score_in.desc());
    AC_CHECK(boxes.dim() == 3 && boxes.size(0) == B && boxes.size(1) == 3 && boxes.size(2) == 4,
             "attentive_keep: boxes must be (B, 3, 4), got ", boxes.desc());
    AC_CHECK(view == 0 || view == 1, "attentive_keep: view must be 0 or 1");
    AC_CHECK(G % c.block == 0, "attentive_keep: block ", c.block, " does not divide the grid ", G);
    NoGradGuard no_grad;
    const std::vector<int64_t> bx = boxes.to_vector<int64_t>();
    for (int64_t b = 0; b < B; ++b) check_boxes(&bx[(b * 3 + 2) * 4], &bx[(b * 3 + view) * 4], b);
    // The boxes differ per sample, and each map is a few hundred values: on a GPU, a read-back of the
    // (B, G*G) scores and the maps on the CPU cost far less than five small launches per sample.
    const Tensor score = score_in.detach().to(Device::CPU).contiguous();  // (B, G*G)
    Tensor squares = empty({B, S * S}, score.dtype());
    dispatch_float(score.dtype(), "attentive_keep", [&](auto tag) {
        using T = typename decltype(tag)::type;
        const T* in = score.data<T>();
        T* out = squares.data<T>();
        parallel_for(B, G * G * 64, [&](int64_t b) {
            std::vector<T> map(static_cast<size_t>(G * G));
            score_map<T>(in + b * G * G, &bx[(b * 3 + 2) * 4], &bx[(b * 3 + view) * 4], G, map.data());
            square_means<T>(map.data(), G, c.block, out + b * S * S);
        });
    });
    const int64_t keep = kept_blocks(c);
    std::vector<int64_t> tops = topk(squares, keep).second.to_vector<int64_t>();  // (B, keep)
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
    return from_vector(out, {B, keep * c.block * c.block}).to(score_in.device());
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
