// image.h: decoding and encoding images. JPEG goes through libjpeg-turbo, with DCT-domain downscaling
// (1/2, 1/4, 1/8) when the caller needs fewer pixels; PNG and the other formats stb_image knows go
// through stb_image. Every failure is an aclip::Error with the reason (corrupt, truncated, too many
// pixels, unknown format), so a loader can skip the sample, count it and warn.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace aclip {

struct Image {
    int64_t width = 0, height = 0;
    std::vector<uint8_t> rgb;  // (height, width, 3), row-major
    uint8_t* pixel(int64_t y, int64_t x) { return rgb.data() + (y * width + x) * 3; }
    const uint8_t* pixel(int64_t y, int64_t x) const { return rgb.data() + (y * width + x) * 3; }
};

// PIL's guard against decompression bombs: images over this many pixels are refused.
constexpr int64_t kMaxImagePixels = 178956970;

struct ImageInfo {
    int64_t width = 0, height = 0;
    bool jpeg = false;
};

// Width and height from the header alone (no pixel decoding).
ImageInfo probe_image(const std::string& bytes, int64_t max_pixels = kMaxImagePixels);

// Decodes to RGB. scale_denom (1, 2, 4 or 8) shrinks JPEGs in the DCT (each side becomes
// ceil(side / scale_denom)); other formats ignore it.
Image decode_image(const std::string& bytes, int scale_denom = 1, int64_t max_pixels = kMaxImagePixels);

// Baseline JPEG of an RGB image (for datasets and tests).
std::string encode_jpeg(const Image& img, int quality = 90);
// PNG of an RGB image (for tests and plots).
std::string encode_png(const Image& img);

}  // namespace aclip
