// color.cpp: see color.h. Each operation is one loop over the pixels of the three planes, written so the
// compiler vectorises it: selects instead of branches, partial sums in lanes.
#include "data/color.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace aclip {

namespace {

struct Planes {  // the three planes of (3, H, W) values
    float* __restrict r;
    float* __restrict g;
    float* __restrict b;
    int64_t n;
    explicit Planes(std::vector<float>& chw)
        : r(chw.data()),
          g(r + chw.size() / 3),
          b(g + chw.size() / 3),
          n(static_cast<int64_t>(chw.size() / 3)) {}
};

float clamp01(float v) {
    return std::clamp(v, 0.0f, 1.0f);
}

float gray_of(float r, float g, float b) {  // ITU-R 601-2 luma, as PIL and torchvision use
    return 0.299f * r + 0.587f * g + 0.114f * b;
}

// The mean gray level: blocks summed in float lanes (vectorised), blocks added in double.
double mean_gray(const float* r, const float* g, const float* b, int64_t n) {
    constexpr int64_t kLanes = 16, kBlock = 1024;
    double total = 0;
    for (int64_t start = 0; start < n; start += kBlock) {
        const int64_t end = std::min(n, start + kBlock);
        float lanes[kLanes] = {};
        int64_t i = start;
        for (; i + kLanes <= end; i += kLanes)
            for (int64_t j = 0; j < kLanes; ++j) lanes[j] += gray_of(r[i + j], g[i + j], b[i + j]);
        for (; i < end; ++i) lanes[0] += gray_of(r[i], g[i], b[i]);
        for (float v : lanes) total += v;
    }
    return total / static_cast<double>(n);
}

// Separable Gaussian blur of one (H, W) plane, edges replicated; tmp holds (H, W) and a padded row.
void blur_plane(float* p, int64_t H, int64_t W, const std::vector<float>& k, std::vector<float>& tmp) {
    const int64_t radius = static_cast<int64_t>(k.size() / 2);
    float* mid = tmp.data();
    float* padded = tmp.data() + H * W;  // (W + 2 radius)
    for (int64_t y = 0; y < H; ++y) {    // horizontal, from a row padded with copies of its ends
        const float* row = p + y * W;
        std::fill(padded, padded + radius, row[0]);
        std::copy(row, row + W, padded + radius);
        std::fill(padded + radius + W, padded + 2 * radius + W, row[W - 1]);
        float* dst = mid + y * W;
        std::fill(dst, dst + W, 0.0f);
        for (int64_t i = 0; i <= 2 * radius; ++i)
            for (int64_t x = 0; x < W; ++x) dst[x] += k[static_cast<size_t>(i)] * padded[x + i];
    }
    for (int64_t y = 0; y < H; ++y) {  // vertical: whole rows, the nearest row past an edge
        float* dst = p + y * W;
        std::fill(dst, dst + W, 0.0f);
        for (int64_t i = -radius; i <= radius; ++i) {
            const float* src = mid + std::clamp<int64_t>(y + i, 0, H - 1) * W;
            const float w = k[static_cast<size_t>(i + radius)];
            for (int64_t x = 0; x < W; ++x) dst[x] += w * src[x];
        }
    }
}

void gaussian_blur(std::vector<float>& chw, int64_t H, int64_t W, double sigma) {
    const int64_t radius = static_cast<int64_t>(std::ceil(3 * sigma));
    std::vector<float> k(static_cast<size_t>(2 * radius + 1));
    double total = 0;
    for (int64_t i = -radius; i <= radius; ++i)
        total += std::exp(-0.5 * static_cast<double>(i * i) / (sigma * sigma));
    for (int64_t i = -radius; i <= radius; ++i)
        k[static_cast<size_t>(i + radius)] =
            static_cast<float>(std::exp(-0.5 * static_cast<double>(i * i) / (sigma * sigma)) / total);
    std::vector<float> tmp(static_cast<size_t>(H * W + W + 2 * radius));
    for (int c = 0; c < 3; ++c) blur_plane(chw.data() + c * H * W, H, W, k, tmp);
}

}  // namespace

void shift_hue(std::vector<float>& chw, float shift) {
    // RGB -> hue (in sixths of a turn), rotate, and back with the branch-free form of HSV -> RGB:
    // channel n (5: red, 3: green, 1: blue) = V - V S clamp(min(k, 4 - k), 0, 1), k = (n + hue) mod 6, where
    // V S = max - min. Selects instead of branches let the compiler vectorise the loop.
    Planes p(chw);
    float* __restrict r = p.r;
    float* __restrict g = p.g;
    float* __restrict b = p.b;
    const int64_t n = p.n;
    const float turn = 6.0f * shift;
    auto channel = [](float mx, float d, float k) {
        k = k >= 6.0f ? k - 6.0f : k;
        return mx - d * std::clamp(std::min(k, 4.0f - k), 0.0f, 1.0f);
    };
    for (int64_t i = 0; i < n; ++i) {
        const float R = r[i], G = g[i], B = b[i];
        const float mx = std::max(R, std::max(G, B)), mn = std::min(R, std::min(G, B)), d = mx - mn;
        const float inv = d > 0.0f ? 1.0f / d : 0.0f;  // gray pixels (d = 0) come back unchanged
        float h = mx == R ? (G - B) * inv : (mx == G ? 2.0f + (B - R) * inv : 4.0f + (R - G) * inv);
        h += turn + 12.0f;  // positive, so truncation is floor
        h -= 6.0f * static_cast<float>(static_cast<int>(h * (1.0f / 6.0f)));  // into [0, 6)
        r[i] = channel(mx, d, 5.0f + h);
        g[i] = channel(mx, d, 3.0f + h);
        b[i] = channel(mx, d, 1.0f + h);
    }
}

void ycbcr_to_rgb(std::vector<float>& chw) {
    Planes p(chw);
    constexpr float kScale = 1.0f / 255.0f;
    for (int64_t i = 0; i < p.n; ++i) {
        const float y = p.r[i], cb = p.g[i] - 128.0f, cr = p.b[i] - 128.0f;
        p.r[i] = clamp01((y + 1.402f * cr) * kScale);
        p.g[i] = clamp01((y - 0.344136f * cb - 0.714136f * cr) * kScale);
        p.b[i] = clamp01((y + 1.772f * cb) * kScale);
    }
}

void adjust_brightness(std::vector<float>& chw, float factor) {
    for (float& v : chw) v = clamp01(v * factor);
}

void adjust_contrast(std::vector<float>& chw, float factor) {
    Planes p(chw);
    const float m = static_cast<float>(mean_gray(p.r, p.g, p.b, p.n)) * (1 - factor);
    for (float& v : chw) v = clamp01(factor * v + m);
}

void adjust_saturation(std::vector<float>& chw, float factor) {
    Planes p(chw);
    for (int64_t i = 0; i < p.n; ++i) {
        const float gray = gray_of(p.r[i], p.g[i], p.b[i]) * (1 - factor);
        p.r[i] = clamp01(factor * p.r[i] + gray);
        p.g[i] = clamp01(factor * p.g[i] + gray);
        p.b[i] = clamp01(factor * p.b[i] + gray);
    }
}

void to_grayscale(std::vector<float>& chw) {
    Planes p(chw);
    for (int64_t i = 0; i < p.n; ++i) p.r[i] = p.g[i] = p.b[i] = gray_of(p.r[i], p.g[i], p.b[i]);
}

void solarize(std::vector<float>& chw, float threshold) {
    for (float& v : chw) v = v >= threshold ? 1.0f - v : v;
}

void color_augment(std::vector<float>& chw, int64_t H, int64_t W, const ColorAugment& cfg, SampleRng& rng) {
    if (rng.coin(cfg.p_jitter)) {
        float bright = static_cast<float>(rng.uniform(std::max(0.0, 1 - cfg.brightness), 1 + cfg.brightness));
        float c = static_cast<float>(rng.uniform(std::max(0.0, 1 - cfg.contrast), 1 + cfg.contrast));
        float s = static_cast<float>(rng.uniform(std::max(0.0, 1 - cfg.saturation), 1 + cfg.saturation));
        float h = static_cast<float>(rng.uniform(-cfg.hue, cfg.hue));
        int order[4] = {0, 1, 2, 3};
        for (int i = 3; i > 0; --i) std::swap(order[i], order[rng.randint(0, i)]);  // a random permutation
        for (int op : order) {
            if (op == 0) adjust_brightness(chw, bright);
            if (op == 1) adjust_contrast(chw, c);
            if (op == 2) adjust_saturation(chw, s);
            if (op == 3) shift_hue(chw, h);
        }
    }
    if (rng.coin(cfg.p_gray)) to_grayscale(chw);
    if (rng.coin(cfg.p_blur)) gaussian_blur(chw, H, W, rng.uniform(cfg.blur_sigma_lo, cfg.blur_sigma_hi));
    if (rng.coin(cfg.p_solarize)) solarize(chw, 128.0f / 255.0f);  // PIL's threshold 128
}

void normalize_planes(std::vector<float>& chw, const std::array<float, 3>& mean,
                      const std::array<float, 3>& std) {
    const size_t n = chw.size() / 3;
    for (size_t c = 0; c < 3; ++c) {
        const float scale = 1.0f / std[c], shift = -mean[c] / std[c];
        float* p = chw.data() + c * n;
        for (size_t i = 0; i < n; ++i) p[i] = p[i] * scale + shift;
    }
}

std::vector<uint8_t> quantize_to_u8(const std::vector<float>& chw) {
    std::vector<uint8_t> out(chw.size());
    // Plain pointers: a store through uint8_t* may alias anything, vectors' own fields included, which
    // would keep the compiler from vectorising a loop over chw[i] and out[i].
    const float* __restrict src = chw.data();
    uint8_t* __restrict dst = out.data();
    const size_t n = chw.size();
    for (size_t i = 0; i < n; ++i) dst[i] = static_cast<uint8_t>(src[i] * 255.0f + 0.5f);  // src in [0, 1]
    return out;
}

}  // namespace aclip
