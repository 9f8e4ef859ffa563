// color.cpp: see color.h. Every per-pixel operation is a kernel over a span of the three planes, written
// so the compiler vectorises it (selects instead of branches, partial sums in lanes). The public
// operations run one kernel over the whole image; a view's pipeline (finish_view) runs its kernels block
// by block, so each block stays in the L1 cache through all of them.
#include "data/color.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

namespace aclip {

namespace {

// ---- per-pixel kernels on n pixels of the planes r, g, b ----

// min and max, not std::clamp: with this file's -ffinite-math-only -fno-signed-zeros (CMakeLists.txt) each
// becomes one vector instruction instead of a compare and a blend.
float clamp01(float v) {
    return std::min(std::max(v, 0.0f), 1.0f);
}

float gray_of(float r, float g, float b) {  // ITU-R 601-2 luma, as PIL and torchvision use
    return 0.299f * r + 0.587f * g + 0.114f * b;
}

// The sum of the gray levels: float lanes (vectorised), returned in double.
double gray_sum(const float* __restrict r, const float* __restrict g, const float* __restrict b, int64_t n) {
    constexpr int64_t kLanes = 16;
    float lanes[kLanes] = {};
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (int64_t j = 0; j < kLanes; ++j) lanes[j] += gray_of(r[i + j], g[i + j], b[i + j]);
    double total = 0;
    for (; i < n; ++i) total += gray_of(r[i], g[i], b[i]);
    for (float v : lanes) total += v;
    return total;
}

void ycbcr_kernel(float* __restrict r, float* __restrict g, float* __restrict b, int64_t n) {
    constexpr float kScale = 1.0f / 255.0f;
    for (int64_t i = 0; i < n; ++i) {  // planes hold Y, Cb, Cr in 0..255 on the way in
        const float y = r[i], cb = g[i] - 128.0f, cr = b[i] - 128.0f;
        r[i] = clamp01((y + 1.402f * cr) * kScale);
        g[i] = clamp01((y - 0.344136f * cb - 0.714136f * cr) * kScale);
        b[i] = clamp01((y + 1.772f * cb) * kScale);
    }
}

// Towards `target` by factor, as torchvision's _blend: brightness (target 0), contrast (the image's
// mean gray level).
void blend_kernel(float* __restrict r, float* __restrict g, float* __restrict b, int64_t n, float factor,
                  float target) {
    const float m = target * (1 - factor);
    for (int64_t i = 0; i < n; ++i) {
        r[i] = clamp01(factor * r[i] + m);
        g[i] = clamp01(factor * g[i] + m);
        b[i] = clamp01(factor * b[i] + m);
    }
}

void saturation_kernel(float* __restrict r, float* __restrict g, float* __restrict b, int64_t n,
                       float factor) {
    for (int64_t i = 0; i < n; ++i) {
        const float gray = gray_of(r[i], g[i], b[i]) * (1 - factor);
        r[i] = clamp01(factor * r[i] + gray);
        g[i] = clamp01(factor * g[i] + gray);
        b[i] = clamp01(factor * b[i] + gray);
    }
}

// RGB -> hue (in sixths of a turn), rotate, and back with the branch-free form of HSV -> RGB: channel n
// (5: red, 3: green, 1: blue) = V - V S clamp(min(k, 4 - k), 0, 1), k = (n + hue) mod 6, where V S = max -
// min.
void hue_kernel(float* __restrict r, float* __restrict g, float* __restrict b, int64_t n, float shift) {
    const float turn = 6.0f * shift;
    auto channel = [](float mx, float d, float k) {
        k = k >= 6.0f ? k - 6.0f : k;
        return mx - d * clamp01(std::min(k, 4.0f - k));
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

void gray_kernel(float* __restrict r, float* __restrict g, float* __restrict b, int64_t n) {
    for (int64_t i = 0; i < n; ++i) r[i] = g[i] = b[i] = gray_of(r[i], g[i], b[i]);
}

void solarize_kernel(float* __restrict r, float* __restrict g, float* __restrict b, int64_t n,
                     float threshold) {
    for (int64_t i = 0; i < n; ++i) {
        r[i] = r[i] >= threshold ? 1.0f - r[i] : r[i];
        g[i] = g[i] >= threshold ? 1.0f - g[i] : g[i];
        b[i] = b[i] >= threshold ? 1.0f - b[i] : b[i];
    }
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

void run_step(const StepArg& s, float* r, float* g, float* b, int64_t n, float mean_gray) {
    switch (s.step) {
        case Step::YCbCr:
            return ycbcr_kernel(r, g, b, n);
        case Step::Brightness:
            return blend_kernel(r, g, b, n, s.value, 0.0f);
        case Step::Contrast:
            return blend_kernel(r, g, b, n, s.value, mean_gray);
        case Step::Saturation:
            return saturation_kernel(r, g, b, n, s.value);
        case Step::Hue:
            return hue_kernel(r, g, b, n, s.value);
        case Step::Gray:
            return gray_kernel(r, g, b, n);
        case Step::Solarize:
            return solarize_kernel(r, g, b, n, s.value);
        case Step::Blur:
            break;  // not per pixel: run_steps handles it
    }
}

// Runs steps over (3, H, W) planes in place and, when out is given, rounds the result into out. Per-pixel
// steps run on blocks of kBlockPixels (12 KiB of floats) one after another; a pass over the blocks ends
// before a contrast step, whose mean gray level the pass measures (a pass may only measure), and at a blur.
void run_steps(std::vector<float>& chw, int64_t H, int64_t W, const std::vector<StepArg>& steps,
               uint8_t* out) {
    constexpr int64_t kBlockPixels = 1024;
    const int64_t n = H * W;
    float* r = chw.data();
    float* g = r + n;
    float* b = g + n;
    float mean_gray = 0;     // of the image as the steps before a contrast step leave it
    bool have_mean = false;  // mean_gray is measured for the contrast step at `first`
    size_t first = 0;
    while (true) {
        size_t end = first;  // the pass runs steps [first, end): a measured contrast step may open it
        if (have_mean && steps[end].step == Step::Contrast) ++end, have_mean = false;
        while (end < steps.size() && steps[end].step != Step::Contrast && steps[end].step != Step::Blur)
            ++end;
        const bool last = end == steps.size(), measure = !last && steps[end].step == Step::Contrast;
        double sum = 0;
        for (int64_t at = 0; at < n; at += kBlockPixels) {
            const int64_t len = std::min(kBlockPixels, n - at);
            for (size_t i = first; i < end; ++i) run_step(steps[i], r + at, g + at, b + at, len, mean_gray);
            if (measure) sum += gray_sum(r + at, g + at, b + at, len);
            if (last && out)
                for (int64_t c = 0; c < 3; ++c) quantize_kernel(r + c * n + at, out + c * n + at, len);
        }
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

void color_augment(std::vector<float>& chw, int64_t H, int64_t W, const ColorAugment& cfg, SampleRng& rng) {
    std::vector<StepArg> steps;
    draw_steps(cfg, rng, steps);
    run_steps(chw, H, W, steps, nullptr);
}

Bytes finish_view(std::vector<float>& chw, int64_t H, int64_t W, bool ycbcr, const ColorAugment* augment,
                  SampleRng& rng) {
    std::vector<StepArg> steps;
    if (ycbcr) steps.push_back({Step::YCbCr});
    if (augment) draw_steps(*augment, rng, steps);
    Bytes out(chw.size());
    run_steps(chw, H, W, steps, out.data());
    return out;
}

Bytes quantize_to_u8(const std::vector<float>& chw) {
    Bytes out(chw.size());
    quantize_kernel(chw.data(), out.data(), static_cast<int64_t>(chw.size()));
    return out;
}

}  // namespace aclip
