// color.cpp: see color.h. Each operation is one loop over the pixels of the three planes, written so the
// compiler vectorises it: selects instead of branches, partial sums in lanes.
#include "data/color.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace aclip {

namespace {

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
    const int64_t n = static_cast<int64_t>(chw.size() / 3);
    float* __restrict r = chw.data();
    float* __restrict g = r + n;
    float* __restrict b = g + n;
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

void color_augment(std::vector<float>& chw, int64_t H, int64_t W, const ColorAugment& cfg, SampleRng& rng) {
    const int64_t n = H * W;
    float* __restrict r = chw.data();
    float* __restrict g = r + n;
    float* __restrict b = g + n;
    auto clamp01 = [](float v) { return std::clamp(v, 0.0f, 1.0f); };
    if (rng.coin(cfg.p_jitter)) {
        float bright = static_cast<float>(rng.uniform(std::max(0.0, 1 - cfg.brightness), 1 + cfg.brightness));
        float c = static_cast<float>(rng.uniform(std::max(0.0, 1 - cfg.contrast), 1 + cfg.contrast));
        float s = static_cast<float>(rng.uniform(std::max(0.0, 1 - cfg.saturation), 1 + cfg.saturation));
        float h = static_cast<float>(rng.uniform(-cfg.hue, cfg.hue));
        int order[4] = {0, 1, 2, 3};
        for (int i = 3; i > 0; --i) std::swap(order[i], order[rng.randint(0, i)]);  // a random permutation
        for (int op : order) {
            if (op == 0) {
                for (float& v : chw) v = clamp01(v * bright);
            } else if (op == 1) {  // contrast: towards the mean gray level
                const float m = static_cast<float>(mean_gray(r, g, b, n)) * (1 - c);
                for (float& v : chw) v = clamp01(c * v + m);
            } else if (op == 2) {  // saturation: towards each pixel's gray level
                for (int64_t i = 0; i < n; ++i) {
                    const float gray = gray_of(r[i], g[i], b[i]) * (1 - s);
                    r[i] = clamp01(s * r[i] + gray);
                    g[i] = clamp01(s * g[i] + gray);
                    b[i] = clamp01(s * b[i] + gray);
                }
            } else {
                shift_hue(chw, h);
            }
        }
    }
    if (rng.coin(cfg.p_gray))
        for (int64_t i = 0; i < n; ++i) r[i] = g[i] = b[i] = gray_of(r[i], g[i], b[i]);
    if (rng.coin(cfg.p_blur)) gaussian_blur(chw, H, W, rng.uniform(cfg.blur_sigma_lo, cfg.blur_sigma_hi));
    if (rng.coin(cfg.p_solarize))
        for (float& v : chw) v = v >= 128.0f / 255.0f ? 1.0f - v : v;  // PIL's threshold 128
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

}  // namespace aclip
