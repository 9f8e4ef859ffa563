// color.h: A-CLIP's colour augmentation (aclip-method.md 2.2), the conversion of JPEG's YCbCr and the
// rounding of views to 8 bits, on planar images: (3, H, W) floats in [0, 1], one contiguous plane per
// channel, so every operation is a vectorisable loop over pixels.
#pragma once
#include <cstdint>
#include <vector>

#include "data/bytes.h"
#include "data/sample_rng.h"

namespace aclip {

// The colour operations, each in place on (3, H, W) floats in [0, 1], as torchvision's functional ops
// compute them on float tensors (tests/data compares them with fixtures made by torchvision).
void adjust_brightness(std::vector<float>& chw, float factor);  // x * factor
void adjust_contrast(std::vector<float>& chw, float factor);    // towards the mean gray level
void adjust_saturation(std::vector<float>& chw, float factor);  // towards each pixel's gray level
void shift_hue(std::vector<float>& chw, float shift);           // rotate the hue by shift turns
void to_grayscale(std::vector<float>& chw);                     // every channel = ITU-R 601-2 luma
void solarize(std::vector<float>& chw, float threshold);        // x >= threshold -> 1 - x

struct ColorAugment {
    double p_jitter = 0.8, brightness = 0.4, contrast = 0.4, saturation = 0.2, hue = 0.1;
    double p_gray = 0.2, p_blur = 0.1, blur_sigma_lo = 0.1, blur_sigma_hi = 2.0, p_solarize = 0.2;
};
// In place on (3, H, W) floats in [0, 1]: jitter (its four parts in random order), grayscale, blur,
// solarize.
void color_augment(std::vector<float>& chw, int64_t H, int64_t W, const ColorAugment& cfg, SampleRng& rng);

// One training view's colour work, fused: YCbCr -> RGB when ycbcr (planes from resize_planes), the
// augmentation when given (the same draws as color_augment), then rounding to 8 bits. Per-pixel steps
// run block by block, so each block stays in the L1 cache through all of them. chw is used as scratch.
Bytes finish_view(std::vector<float>& chw, int64_t H, int64_t W, bool ycbcr, const ColorAugment* augment,
                  SampleRng& rng);

// (3, H, W) floats in [0, 1] -> 0..255, rounded to nearest.
Bytes quantize_to_u8(const std::vector<float>& chw);

}  // namespace aclip
