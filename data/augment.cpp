// augment.cpp: see augment.h.
#include "data/augment.h"

#include <malloc.h>

#include <algorithm>
#include <cmath>
#include <mutex>

#include "engine/core/error.h"
#include "engine/math/philox.h"

namespace aclip {

double SampleRng::uniform() {
    uint64_t i = next_++;
    Philox4 r = philox4x32_10(seed_, base_ + i / 2);
    uint64_t bits = (static_cast<uint64_t>(r.v[(i % 2) * 2]) << 32) | r.v[(i % 2) * 2 + 1];
    return static_cast<double>(bits >> 11) * (1.0 / 9007199254740992.0);  // 53 bits
}

int64_t SampleRng::randint(int64_t lo, int64_t hi) {
    AC_CHECK(lo <= hi, "randint: empty range [", lo, ", ", hi, "]");
    return lo +
           std::min<int64_t>(hi - lo, static_cast<int64_t>(uniform() * static_cast<double>(hi - lo + 1)));
}

Box random_resized_crop(int64_t H, int64_t W, double scale_lo, double scale_hi, SampleRng& rng,
                        double ratio_lo, double ratio_hi) {
    const double area = static_cast<double>(H * W);
    for (int attempt = 0; attempt < 10; ++attempt) {
        double target = area * rng.uniform(scale_lo, scale_hi);
        double aspect = std::exp(rng.uniform(std::log(ratio_lo), std::log(ratio_hi)));
        auto w = static_cast<int64_t>(std::lround(std::sqrt(target * aspect)));
        auto h = static_cast<int64_t>(std::lround(std::sqrt(target / aspect)));
        if (w > 0 && h > 0 && w <= W && h <= H) return {rng.randint(0, H - h), rng.randint(0, W - w), h, w};
    }
    // fallback: the whole image, cut to the nearest allowed aspect, centred
    double in_ratio = static_cast<double>(W) / static_cast<double>(H);
    int64_t w = W, h = H;
    if (in_ratio < ratio_lo)
        h = static_cast<int64_t>(std::lround(static_cast<double>(W) / ratio_lo));
    else if (in_ratio > ratio_hi)
        w = static_cast<int64_t>(std::lround(static_cast<double>(H) * ratio_hi));
    return {(H - h) / 2, (W - w) / 2, h, w};
}

EmaCrop ema_crop_from_name(const std::string& name) {
    if (name == "union") return EmaCrop::Union;
    if (name == "official") return EmaCrop::Official;
    AC_FAIL("unknown aclip.ema_crop '", name, "'; accepted: union, official");
}

Box ema_crop_box(const Box& v1, const Box& v2, int64_t H, int64_t W, EmaCrop mode, SampleRng& rng) {
    const int64_t top0 = std::min(v1.top, v2.top);
    const int64_t bottom = std::max(v1.top + v1.height, v2.top + v2.height);
    const int64_t right = std::max(v1.left + v1.width, v2.left + v2.width);
    if (mode == EmaCrop::Union) {
        const int64_t left0 = std::min(v1.left, v2.left);
        int64_t top = top0 > 0 ? rng.randint(0, top0) : 0;
        int64_t left = left0 > 0 ? rng.randint(0, left0) : 0;
        int64_t h = rng.randint(bottom - top, H - top);  // still reaching the union's bottom and right
        int64_t w = rng.randint(right - left, W - left);
        return {top, left, h, w};
    }
    // The official code (datasets.py:263): left0 = min(left1, height2); the size is drawn from the
    // union's size, so the box can miss part of the views. Kept inside the image here.
    const int64_t left0 = std::min<int64_t>(std::min(v1.left, v2.height), W - 1);
    const int64_t h0 = bottom - top0, w0 = std::max<int64_t>(right - left0, 1);
    int64_t top = top0 > 0 ? rng.randint(0, top0) : top0;
    int64_t left = left0 > 0 ? rng.randint(0, left0) : left0;
    int64_t h = h0 < H ? rng.randint(std::min(h0, H - top), H - top) : H - top;
    int64_t w = w0 < W ? rng.randint(std::min(w0, W - left), W - left) : W - left;
    return {top, left, h, w};
}

namespace {

// PIL's bilinear ("triangle") resampling weights for one axis, antialiased when shrinking: output o
// covers [start + o * scale, start + (o + 1) * scale) of the input, and the filter widens by the scale.
// Stored flat: output o reads inputs first[o] .. first[o] + taps - 1 with weights w[o * taps ...]
// (zero-padded), so the inner loops have a fixed length.
struct Taps {
    int64_t taps = 0;
    std::vector<int64_t> first;
    std::vector<float> w;
};

Taps resample_taps(double start, double length, int64_t in_size, int64_t out_size) {
    const double scale = length / static_cast<double>(out_size);
    const double support = std::max(scale, 1.0);  // the triangle's half-width, in input pixels
    Taps t;
    t.taps = static_cast<int64_t>(std::ceil(2 * support)) + 2;
    t.first.resize(static_cast<size_t>(out_size));
    t.w.assign(static_cast<size_t>(out_size * t.taps), 0.0f);
    for (int64_t o = 0; o < out_size; ++o) {
        const double center = start + (static_cast<double>(o) + 0.5) * scale;
        int64_t lo = std::max<int64_t>(static_cast<int64_t>(std::floor(center - support)), 0);
        int64_t hi = std::min<int64_t>(static_cast<int64_t>(std::ceil(center + support)), in_size);
        double total = 0;
        for (int64_t i = lo; i < std::min(hi, lo + t.taps); ++i) {
            double x = (static_cast<double>(i) + 0.5 - center) / support;
            double v = std::max(0.0, 1.0 - std::abs(x));
            t.w[static_cast<size_t>(o * t.taps + (i - lo))] = static_cast<float>(v);
            total += v;
        }
        if (total <= 0) {  // the centre fell between samples at the border: take the nearest pixel
            int64_t nearest = std::clamp<int64_t>(static_cast<int64_t>(center), 0, in_size - 1);
            std::fill(t.w.begin() + o * t.taps, t.w.begin() + (o + 1) * t.taps, 0.0f);
            lo = nearest;
            t.w[static_cast<size_t>(o * t.taps)] = 1.0f;
            total = 1;
        }
        for (int64_t k = 0; k < t.taps; ++k)
            t.w[static_cast<size_t>(o * t.taps + k)] /= static_cast<float>(total);
        t.first[static_cast<size_t>(o)] = lo;
    }
    return t;
}

// The horizontal pass: out (out_h, out_w, 3) in [0, 1] from rows (out_h, span) of 0..255 values. TAPS
// is the tap count when known at compile time (the loop is then unrolled), else 0 (tx.taps at run time).
// Weights past a window's end are zero and the rows are padded, so every window reads TAPS pixels.
template <int TAPS>
void horizontal_rows(const float* rows, int64_t span, int64_t col_lo, const Taps& tx, float* out,
                     int64_t out_h, int64_t out_w) {
    const int64_t taps = TAPS ? TAPS : tx.taps;
    for (int64_t y = 0; y < out_h; ++y) {
        const float* src = rows + y * span;
        float* dst = out + y * out_w * 3;
        for (int64_t x = 0; x < out_w; ++x) {
            const float* p = src + (tx.first[static_cast<size_t>(x)] - col_lo) * 3;
            const float* w = tx.w.data() + x * taps;
            float r = 0, g = 0, b = 0;
            for (int64_t k = 0; k < taps; ++k) {
                r += w[k] * p[3 * k];
                g += w[k] * p[3 * k + 1];
                b += w[k] * p[3 * k + 2];
            }
            dst[3 * x] = std::clamp(r * (1.0f / 255.0f), 0.0f, 1.0f);
            dst[3 * x + 1] = std::clamp(g * (1.0f / 255.0f), 0.0f, 1.0f);
            dst[3 * x + 2] = std::clamp(b * (1.0f / 255.0f), 0.0f, 1.0f);
        }
    }
}

void horizontal_pass(const float* rows, int64_t span, int64_t col_lo, const Taps& tx, float* out,
                     int64_t out_h, int64_t out_w) {
    switch (tx.taps) {  // the common shrink factors of training crops (taps = ceil(2 support) + 2)
        case 4:
            return horizontal_rows<4>(rows, span, col_lo, tx, out, out_h, out_w);
        case 5:
            return horizontal_rows<5>(rows, span, col_lo, tx, out, out_h, out_w);
        case 6:
            return horizontal_rows<6>(rows, span, col_lo, tx, out, out_h, out_w);
        case 7:
            return horizontal_rows<7>(rows, span, col_lo, tx, out, out_h, out_w);
        default:
            return horizontal_rows<0>(rows, span, col_lo, tx, out, out_h, out_w);
    }
}

}  // namespace

std::vector<float> crop_resize(const Image& img, double top, double left, double height, double width,
                               int64_t out_h, int64_t out_w) {
    AC_CHECK(height > 0 && width > 0 && out_h > 0 && out_w > 0, "crop_resize: empty crop ", height, "x",
             width, " or output ", out_h, "x", out_w);
    Taps ty = resample_taps(top, height, img.height, out_h),
         tx = resample_taps(left, width, img.width, out_w);
    // Vertical pass first, straight from the uint8 rows (contiguous, so it vectorises), over the columns
    // the horizontal taps touch: (out_h, cols, 3) floats. Then the horizontal pass on out_h rows only.
    const int64_t col_lo = tx.first.front();
    const int64_t col_hi = std::min(img.width, tx.first.back() + tx.taps);
    const int64_t cols = col_hi - col_lo, span = cols * 3;
    // Each row is padded by the widest tap window, so the horizontal pass always reads `taps` pixels.
    std::vector<float> rows(static_cast<size_t>(out_h * span + tx.taps * 3), 0.0f);
    for (int64_t y = 0; y < out_h; ++y) {
        float* dst = rows.data() + y * span;
        const float* w = ty.w.data() + y * ty.taps;
        const int64_t first = ty.first[static_cast<size_t>(y)];
        const int64_t n = std::min(ty.taps, img.height - first);
        for (int64_t k = 0; k < n; ++k) {
            if (w[k] == 0.0f) continue;
            const uint8_t* src = img.pixel(first + k, col_lo);
            const float wk = w[k];
            for (int64_t i = 0; i < span; ++i) dst[i] += wk * static_cast<float>(src[i]);
        }
    }
    std::vector<float> out(static_cast<size_t>(out_h * out_w * 3));
    horizontal_pass(rows.data(), span, col_lo, tx, out.data(), out_h, out_w);
    return out;
}

namespace {

float gray_of(const float* p) {
    return 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2];
}

}  // namespace

void shift_hue(std::vector<float>& x, float shift) {
    // RGB -> hue (in sixths of a turn), rotate, and back with the branch-free form of HSV -> RGB:
    // channel n (5: red, 3: green, 1: blue) = V - V S clamp(min(k, 4 - k), 0, 1), k = (n + hue) mod 6, where
    // V S = max - min. Selects instead of branches let the compiler vectorise the loop.
    float* p = x.data();
    const size_t n = x.size() / 3;
    const float turn = 6.0f * shift;
    auto channel = [](float mx, float d, float k) {
        k = k >= 6.0f ? k - 6.0f : k;
        return mx - d * std::clamp(std::min(k, 4.0f - k), 0.0f, 1.0f);
    };
    for (size_t i = 0; i < n; ++i) {
        const float r = p[3 * i], g = p[3 * i + 1], b = p[3 * i + 2];
        const float mx = std::max(r, std::max(g, b)), mn = std::min(r, std::min(g, b)), d = mx - mn;
        const float inv = d > 0.0f ? 1.0f / d : 0.0f;  // gray pixels (d = 0) come back unchanged
        float h = mx == r ? (g - b) * inv : (mx == g ? 2.0f + (b - r) * inv : 4.0f + (r - g) * inv);
        h += turn + 12.0f;  // positive, so truncation is floor
        h -= 6.0f * static_cast<float>(static_cast<int>(h * (1.0f / 6.0f)));  // into [0, 6)
        p[3 * i] = channel(mx, d, 5.0f + h);
        p[3 * i + 1] = channel(mx, d, 3.0f + h);
        p[3 * i + 2] = channel(mx, d, 1.0f + h);
    }
}

namespace {

void gaussian_blur(std::vector<float>& x, int64_t H, int64_t W, double sigma) {
    const int64_t radius = static_cast<int64_t>(std::ceil(3 * sigma));
    std::vector<float> k(2 * radius + 1);
    float total = 0;
    for (int64_t i = -radius; i <= radius; ++i)
        total += k[i + radius] = static_cast<float>(std::exp(-0.5 * i * i / (sigma * sigma)));
    for (float& v : k) v /= total;
    std::vector<float> tmp(x.size());
    auto pass = [&](const std::vector<float>& src, std::vector<float>& dst, bool horizontal) {
        for (int64_t y = 0; y < H; ++y)
            for (int64_t xx = 0; xx < W; ++xx)
                for (int c = 0; c < 3; ++c) {
                    float acc = 0;
                    for (int64_t i = -radius; i <= radius; ++i) {
                        int64_t yy = horizontal ? y : std::clamp<int64_t>(y + i, 0, H - 1);
                        int64_t xs = horizontal ? std::clamp<int64_t>(xx + i, 0, W - 1) : xx;
                        acc += k[i + radius] * src[(yy * W + xs) * 3 + c];
                    }
                    dst[(y * W + xx) * 3 + c] = acc;
                }
    };
    pass(x, tmp, true);
    pass(tmp, x, false);
}

}  // namespace

void color_augment(std::vector<float>& x, int64_t H, int64_t W, const ColorAugment& cfg, SampleRng& rng) {
    if (rng.coin(cfg.p_jitter)) {
        float b = static_cast<float>(rng.uniform(std::max(0.0, 1 - cfg.brightness), 1 + cfg.brightness));
        float c = static_cast<float>(rng.uniform(std::max(0.0, 1 - cfg.contrast), 1 + cfg.contrast));
        float s = static_cast<float>(rng.uniform(std::max(0.0, 1 - cfg.saturation), 1 + cfg.saturation));
        float h = static_cast<float>(rng.uniform(-cfg.hue, cfg.hue));
        int order[4] = {0, 1, 2, 3};
        for (int i = 3; i > 0; --i) std::swap(order[i], order[rng.randint(0, i)]);  // a random permutation
        for (int op : order) {
            if (op == 0) {
                for (float& v : x) v = std::clamp(v * b, 0.0f, 1.0f);
            } else if (op == 1) {  // contrast: towards the mean gray level
                double sum = 0;
                for (size_t i = 0; i < x.size(); i += 3) sum += gray_of(&x[i]);
                const float m = static_cast<float>(sum / static_cast<double>(H * W)) * (1 - c);
                for (float& v : x) v = std::clamp(c * v + m, 0.0f, 1.0f);
            } else if (op == 2) {  // saturation: towards each pixel's gray level
                for (size_t i = 0; i < x.size(); i += 3) {
                    const float g = gray_of(&x[i]) * (1 - s);
                    for (int k = 0; k < 3; ++k) x[i + k] = std::clamp(s * x[i + k] + g, 0.0f, 1.0f);
                }
            } else {
                shift_hue(x, h);
            }
        }
    }
    if (rng.coin(cfg.p_gray))
        for (size_t i = 0; i < x.size(); i += 3) x[i] = x[i + 1] = x[i + 2] = gray_of(&x[i]);
    if (rng.coin(cfg.p_blur)) gaussian_blur(x, H, W, rng.uniform(cfg.blur_sigma_lo, cfg.blur_sigma_hi));
    if (rng.coin(cfg.p_solarize))
        for (float& v : x) v = v >= 128.0f / 255.0f ? 1.0f - v : v;  // PIL's threshold 128
}

void normalize_to_chw(const std::vector<float>& hwc, int64_t H, int64_t W, const std::array<float, 3>& mean,
                      const std::array<float, 3>& std, float* out) {
    for (int c = 0; c < 3; ++c)
        for (int64_t i = 0; i < H * W; ++i) out[c * H * W + i] = (hwc[i * 3 + c] - mean[c]) / std[c];
}

void reuse_large_buffers() {
    static std::once_flag once;
    std::call_once(once, [] {
        mallopt(M_MMAP_THRESHOLD, 64 << 20);  // fixed: also stops glibc's own threshold adjustment
        mallopt(M_TRIM_THRESHOLD, 256 << 20);
    });
}

AclipViews aclip_train_transform(const std::string& bytes, const TransformConfig& cfg, SampleRng& rng) {
    ImageInfo info = probe_image(bytes, cfg.max_pixels);
    const int64_t H = info.height, W = info.width, S = cfg.size;
    AclipViews v;
    v.boxes[0] = random_resized_crop(H, W, cfg.scale_lo, cfg.scale_hi, rng);
    v.boxes[1] = random_resized_crop(H, W, cfg.scale_lo, cfg.scale_hi, rng);
    v.boxes[2] = ema_crop_box(v.boxes[0], v.boxes[1], H, W, cfg.ema_crop, rng);
    // Decode only as many pixels as the smallest crop needs: the largest DCT shrink that keeps it >= S.
    int64_t smallest = INT64_MAX;
    for (const Box& b : v.boxes) smallest = std::min({smallest, b.height, b.width});
    v.scale_denom = 1;
    if (info.jpeg)
        for (int d : {8, 4, 2})
            if (smallest / d >= S) {
                v.scale_denom = d;
                break;
            }
    Image img = decode_image(bytes, v.scale_denom, cfg.max_pixels);
    const double sy = static_cast<double>(img.height) / static_cast<double>(H);
    const double sx = static_cast<double>(img.width) / static_cast<double>(W);
    auto view = [&](const Box& b, bool augment) {
        std::vector<float> hwc = crop_resize(img, b.top * sy, b.left * sx, b.height * sy, b.width * sx, S, S);
        if (augment) color_augment(hwc, S, S, cfg.color, rng);
        std::vector<float> chw(3 * S * S);
        normalize_to_chw(hwc, S, S, cfg.mean, cfg.std, chw.data());
        return chw;
    };
    v.view1 = view(v.boxes[0], true);
    v.view2 = view(v.boxes[1], true);
    v.ema = view(v.boxes[2], false);  // the teacher sees the crop without colour augmentation
    return v;
}

std::vector<float> eval_transform(const std::string& bytes, const TransformConfig& cfg) {
    Image img = decode_image(bytes, 1, cfg.max_pixels);
    const int64_t S = cfg.size;
    // resize so the short side is S (torchvision Resize(S)), then take the centre S x S
    const double scale = static_cast<double>(std::min(img.height, img.width)) / static_cast<double>(S);
    const double side = S * scale;
    std::vector<float> hwc = crop_resize(img, (static_cast<double>(img.height) - side) / 2,
                                         (static_cast<double>(img.width) - side) / 2, side, side, S, S);
    std::vector<float> chw(3 * S * S);
    normalize_to_chw(hwc, S, S, cfg.mean, cfg.std, chw.data());
    return chw;
}

}  // namespace aclip
