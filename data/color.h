// color.h: A-CLIP's colour augmentation (aclip-method.md 2.2) and the normalisation of the model's input,
// on planar images: (3, H, W) floats in [0, 1], one contiguous plane per channel, so every operation is
// a vectorisable loop over pixels.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "data/sample_rng.h"

namespace aclip {

// Rotates the hue of (3, H, W) floats in [0, 1] by shift turns (torchvision's adjust_hue), in place.
void shift_hue(std::vector<float>& chw, float shift);

struct ColorAugment {
    double p_jitter = 0.8, brightness = 0.4, contrast = 0.4, saturation = 0.2, hue = 0.1;
    double p_gray = 0.2, p_blur = 0.1, blur_sigma_lo = 0.1, blur_sigma_hi = 2.0, p_solarize = 0.2;
};
// In place on (3, H, W) floats in [0, 1]: jitter (its four parts in random order), grayscale, blur,
// solarize.
void color_augment(std::vector<float>& chw, int64_t H, int64_t W, const ColorAugment& cfg, SampleRng& rng);

// (3, H, W) in [0, 1] -> (x - mean[c]) / std[c], in place.
void normalize_planes(std::vector<float>& chw, const std::array<float, 3>& mean,
                      const std::array<float, 3>& std);

}  // namespace aclip
