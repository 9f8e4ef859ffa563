// color.cpp: see color.h. Every per-pixel operation is a step on sixteen pixels held in registers
// (GCC/Clang vector extensions: AVX-512 registers with ACLIP_NATIVE, narrower ones otherwise), so a view's
// whole chain (finish_view) loads and stores each pixel once per pass; the public operations are chains
// of one step.
#include "data/color.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <utility>

namespace aclip {

namespace {

// ---- per-pixel steps on sixteen pixels held in registers ----

using Lanes = float __attribute__((vector_size(64)));  // one channel of sixteen pixels
using IntLanes = int32_t __attribute__((vector_size(64)));
using ByteLanes = uint8_t __attribute__((vector_size(16)));
constexpr int64_t kLanes = 16;

struct Pixels {
    Lanes r, g, b;
};

Lanes lanes_min(Lanes a, Lanes b) {
    return a < b ? a : b;
}
Lanes lanes_max(Lanes a, Lanes b) {
    return a > b ? a : b;
}
Lanes clamp01(Lanes v) {
    return lanes_min(lanes_max(v, Lanes{}), Lanes{} + 1.0f);
}
Lanes gray_of(const Pixels& p) {  // ITU-R 601-2 luma, as PIL and torchvision use
    return 0.299f * p.r + 0.587f * p.g + 0.114f * p.b;
}

void ycbcr_to_rgb_step(Pixels& p) {  // planes hold Y, Cb, Cr in 0..255 on the way in
    constexpr float kScale = 1.0f / 255.0f;
    const Lanes y = p.r, cb = p.g - 128.0f, cr = p.b - 128.0f;
    p.r = clamp01((y + 1.402f * cr) * kScale);
    p.g = clamp01((y - 0.344136f * cb - 0.714136f * cr) * kScale);
    p.b = clamp01((y + 1.772f * cb) * kScale);
}

// Towards `target` by factor (brightness: target 0; contrast: the image's mean gray; saturation: each
// pixel's gray), as torchvision's _blend.
void blend_step(Pixels& p, float factor, Lanes target) {
    const Lanes t = target * (1.0f - factor);
    p.r = clamp01(factor * p.r + t);
    p.g = clamp01(factor * p.g + t);
    p.b = clamp01(factor * p.b + t);
}

// RGB -> hue (in sixths of a turn), rotate, and back with the branch-free form of HSV -> RGB: channel n
// (5: red, 3: green, 1: blue) = V - V S clamp(min(k, 4 - k), 0, 1), k = (n + hue) mod 6, where V S = max -
// min.
void hue_step(Pixels& p, float shift) {
    const Lanes R = p.r, G = p.g, B = p.b;
    const Lanes mx = lanes_max(R, lanes_max(G, B)), d = mx - lanes_min(R, lanes_min(G, B));
    const Lanes inv = d > 0.0f ? 1.0f / d : Lanes{};  // gray pixels (d = 0) come back unchanged
    Lanes h = mx == R ? (G - B) * inv : (mx == G ? 2.0f + (B - R) * inv : 4.0f + (R - G) * inv);
    h += 6.0f * shift + 12.0f;  // positive, so truncation is floor
    h -= 6.0f * __builtin_convertvector(__builtin_convertvector(h * (1.0f / 6.0f), IntLanes), Lanes);
    auto channel = [&](float offset) {
        Lanes k = offset + h;
        k = k >= 6.0f ? k - 6.0f : k;
        return mx - d * clamp01(lanes_min(k, 4.0f - k));
    };
    p.r = channel(5.0f);
    p.g = channel(3.0f);
    p.b = channel(1.0f);
}

void solarize_step(Pixels& p, float threshold) {
    p.r = p.r >= threshold ? 1.0f - p.r : p.r;
    p.g = p.g >= threshold ? 1.0f - p.g : p.g;
    p.b = p.b >= threshold ? 1.0f - p.b : p.b;
}

// Values in [0, 1] -> 0..255, rounded to nearest. Plain restrict pointers: a store through uint8_t* may
// alias anything, which would otherwise keep the compiler from vectorising.
void quantize_kernel(const float* __restrict src, uint8_t* __restrict dst, int64_t n) {
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<uint8_t>(src[i] * 255.0f + 0.5f);
}

// ---- Gaussian blur: the only step that needs neighbours ----

// dst[x] = sum over i of k[i] * src[x + i * step], x < n. Sixteen outputs at a time summed over all taps
// in registers, then stored once (a store per tap made the blur store-bound).
void blur_taps(const float* __restrict src, int64_t step, const std::vector<float>& k, int64_t n,
               float* __restrict dst) {
    using Lanes = float __attribute__((vector_size(64)));  // sixteen outputs
    constexpr int64_t kLanes = 16;
    const int64_t taps = static_cast<int64_t>(k.size());
    int64_t x = 0;
    for (; x + kLanes <= n; x += kLanes) {
        Lanes acc = {};
        for (int64_t i = 0; i < taps; ++i) {
            Lanes v;
            std::memcpy(&v, src + i * step + x, sizeof v);
            acc += k[static_cast<size_t>(i)] * v;
        }
        std::memcpy(dst + x, &acc, sizeof acc);
    }
    for (; x < n; ++x) {
        float acc = 0;
        for (int64_t i = 0; i < taps; ++i) acc += k[static_cast<size_t>(i)] * src[i * step + x];
        dst[x] = acc;
    }
}

// Separable blur of one (H, W) plane, edges replicated (by padding rows and columns with copies of the
// edge); tmp holds the padded column pass, (H + 2 radius, W), and one padded row.
void blur_plane(float* p, int64_t H, int64_t W, const std::vector<float>& k, std::vector<float>& tmp) {
    const int64_t radius = static_cast<int64_t>(k.size() / 2);
    float* rows = tmp.data();                     // (H + 2 radius, W): rows blurred horizontally
    float* padded = rows + (H + 2 * radius) * W;  // (W + 2 radius)
    for (int64_t y = 0; y < H; ++y) {
        const float* row = p + y * W;
        std::fill(padded, padded + radius, row[0]);
        std::copy(row, row + W, padded + radius);
        std::fill(padded + radius + W, padded + 2 * radius + W, row[W - 1]);
        blur_taps(padded, 1, k, W, rows + (y + radius) * W);
    }
    for (int64_t y = 0; y < radius; ++y) {  // the first and last rows, repeated past the edges
        std::copy(rows + radius * W, rows + (radius + 1) * W, rows + y * W);
        std::copy(rows + (radius + H - 1) * W, rows + (radius + H) * W, rows + (radius + H + y) * W);
    }
    for (int64_t y = 0; y < H; ++y) blur_taps(rows + y * W, W, k, W, p + y * W);
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
    std::vector<float> tmp(static_cast<size_t>((H + 2 * radius) * W + W + 2 * radius));
    for (int c = 0; c < 3; ++c) blur_plane(chw.data() + c * H * W, H, W, k, tmp);
}

// ---- steps and their fused runs ----

enum class Step { YCbCr, Brightness, Contrast, Saturation, Hue, Gray, Blur, Solarize };

struct StepArg {
    Step step;
    float value = 0;  // the factor, shift, sigma or threshold
};

// The steps of color_augment, drawn from rng in its order: jitter (its four parts in random order),
// grayscale, blur, solarize.
void draw_steps(const ColorAugment& cfg, SampleRng& rng, std::vector<StepArg>& steps) {
    if (rng.coin(cfg.p_jitter)) {
        const float bright =
            static_cast<float>(rng.uniform(std::max(0.0, 1 - cfg.brightness), 1 + cfg.brightness));
        const float c = static_cast<float>(rng.uniform(std::max(0.0, 1 - cfg.contrast), 1 + cfg.contrast));
        const float s =
            static_cast<float>(rng.uniform(std::max(0.0, 1 - cfg.saturation), 1 + cfg.saturation));
        const float h = static_cast<float>(rng.uniform(-cfg.hue, cfg.hue));
        StepArg jitter[4] = {
            {Step::Brightness, bright}, {Step::Contrast, c}, {Step::Saturation, s}, {Step::Hue, h}};
        for (int i = 3; i > 0; --i) std::swap(jitter[i], jitter[rng.randint(0, i)]);  // a random permutation
        steps.insert(steps.end(), jitter, jitter + 4);
    }
    if (rng.coin(cfg.p_gray)) steps.push_back({Step::Gray});
    if (rng.coin(cfg.p_blur))
        steps.push_back({Step::Blur, static_cast<float>(rng.uniform(cfg.blur_sigma_lo, cfg.blur_sigma_hi))});
    if (rng.coin(cfg.p_solarize)) steps.push_back({Step::Solarize, 128.0f / 255.0f});  // PIL's threshold 128
}

void apply(const StepArg& s, Pixels& p, float mean_gray) {
    switch (s.step) {
        case Step::YCbCr:
            return ycbcr_to_rgb_step(p);
        case Step::Brightness:
            return blend_step(p, s.value, Lanes{});
        case Step::Contrast:
            return blend_step(p, s.value, Lanes{} + mean_gray);
        case Step::Saturation:
            return blend_step(p, s.value, gray_of(p));
        case Step::Hue:
            return hue_step(p, s.value);
        case Step::Gray:
            p.r = p.g = p.b = gray_of(p);
            return;
        case Step::Solarize:
            return solarize_step(p, s.value);
        case Step::Blur:
            return;  // not per pixel: run_steps handles it
    }
}

// Runs steps over (3, H, W) planes in place and, when out is given, rounds the result into out. A pass
// loads sixteen pixels, applies its per-pixel steps to them in registers and stores them once (a store per
// step made these steps store-bound); a pass ends before a contrast step, whose mean gray level it
// measures (a pass may only measure), and at a blur.
void run_steps(std::vector<float>& chw, int64_t H, int64_t W, const std::vector<StepArg>& steps,
               uint8_t* out) {
    const int64_t n = H * W;
    float* planes[3] = {chw.data(), chw.data() + n, chw.data() + 2 * n};
    float mean_gray = 0;     // of the image as the steps before a contrast step leave it
    bool have_mean = false;  // mean_gray is measured for the contrast step at `first`
    size_t first = 0;
    while (true) {
        size_t end = first;  // the pass runs steps [first, end): a measured contrast step may open it
        if (have_mean && steps[end].step == Step::Contrast) ++end, have_mean = false;
        while (end < steps.size() && steps[end].step != Step::Contrast && steps[end].step != Step::Blur)
            ++end;
        const bool last = end == steps.size(), measure = !last && steps[end].step == Step::Contrast;
        Lanes sums{};  // gray levels summed per lane; a partial chunk's padding lanes are zero
        double sum = 0;
        // One chunk of len pixels (kLanes but for the last): constant-size copies for full chunks
        auto chunk = [&](int64_t at, auto full) {
            constexpr bool kFull = decltype(full)::value;
            const size_t bytes = kFull ? sizeof(Lanes) : static_cast<size_t>(n - at) * sizeof(float);
            Pixels p{};
            std::memcpy(&p.r, planes[0] + at, bytes);
            std::memcpy(&p.g, planes[1] + at, bytes);
            std::memcpy(&p.b, planes[2] + at, bytes);
            for (size_t i = first; i < end; ++i) apply(steps[i], p, mean_gray);
            if (measure) {
                Lanes gray = gray_of(p);
                if (!kFull)
                    for (int64_t j = n - at; j < kLanes; ++j) gray[j] = 0;
                sums += gray;
            }
            if (last && out) {
                const Lanes* channel[3] = {&p.r, &p.g, &p.b};
                for (int c = 0; c < 3; ++c) {
                    const ByteLanes q = __builtin_convertvector(
                        __builtin_convertvector(*channel[c] * 255.0f + 0.5f, IntLanes), ByteLanes);
                    std::memcpy(out + c * n + at, &q, bytes / sizeof(float));
                }
            } else if (end > first) {  // (a pass that only measures changes nothing)
                std::memcpy(planes[0] + at, &p.r, bytes);
                std::memcpy(planes[1] + at, &p.g, bytes);
                std::memcpy(planes[2] + at, &p.b, bytes);
            }
        };
        int64_t at = 0;
        for (; at + kLanes <= n; at += kLanes) {
            chunk(at, std::true_type{});
            if ((at / kLanes) % 64 == 63)  // lanes hold at most 64 chunks' sums: f32 stays exact enough
                for (int64_t j = 0; j < kLanes; ++j) sum += sums[j], sums[j] = 0;
        }
        if (at < n) chunk(at, std::false_type{});
        for (int64_t j = 0; j < kLanes; ++j) sum += sums[j];
        if (last) return;
        if (measure) {
            mean_gray = static_cast<float>(sum / static_cast<double>(n));
            have_mean = true;
            first = end;
        } else {
            gaussian_blur(chw, H, W, steps[end].value);
            first = end + 1;
        }
    }
}

void run_one(std::vector<float>& chw, StepArg s) {
    const int64_t n = static_cast<int64_t>(chw.size() / 3);
    run_steps(chw, 1, n, {s}, nullptr);
}

}  // namespace

void adjust_brightness(std::vector<float>& chw, float factor) {
    run_one(chw, {Step::Brightness, factor});
}

void adjust_contrast(std::vector<float>& chw, float factor) {
    run_one(chw, {Step::Contrast, factor});
}

void adjust_saturation(std::vector<float>& chw, float factor) {
    run_one(chw, {Step::Saturation, factor});
}

void shift_hue(std::vector<float>& chw, float shift) {
    run_one(chw, {Step::Hue, shift});
}

void to_grayscale(std::vector<float>& chw) {
    run_one(chw, {Step::Gray});
}

void solarize(std::vector<float>& chw, float threshold) {
    run_one(chw, {Step::Solarize, threshold});
}

void ycbcr_to_rgb(std::vector<float>& chw) {
    run_one(chw, {Step::YCbCr});
}

void color_augment(std::vector<float>& chw, int64_t H, int64_t W, const ColorAugment& cfg, SampleRng& rng) {
    std::vector<StepArg> steps;
    draw_steps(cfg, rng, steps);
    run_steps(chw, H, W, steps, nullptr);
}

std::vector<uint8_t> finish_view(std::vector<float>& chw, int64_t H, int64_t W, bool ycbcr,
                                 const ColorAugment* augment, SampleRng& rng) {
    std::vector<StepArg> steps;
    if (ycbcr) steps.push_back({Step::YCbCr});
    if (augment) draw_steps(*augment, rng, steps);
    std::vector<uint8_t> out(chw.size());
    run_steps(chw, H, W, steps, out.data());
    return out;
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
    quantize_kernel(chw.data(), out.data(), static_cast<int64_t>(chw.size()));
    return out;
}

}  // namespace aclip
