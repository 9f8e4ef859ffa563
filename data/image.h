// image.h: decoding and encoding images. JPEG goes through libjpeg-turbo, with DCT-domain downscaling
// (1/2, 1/4, 1/8) when the caller needs fewer pixels; PNG and the other formats stb_image knows go
// through stb_image. Every failure is an aclip::Error with the reason (corrupt, truncated, too many
// pixels, unknown format), so a loader can skip the sample, count it and warn.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "data/bytes.h"

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

// One channel of an image: (height, width) bytes, rows stride bytes apart.
struct Plane {
    int64_t width = 0, height = 0, stride = 0;
    Bytes data;
    const uint8_t* row(int64_t y) const { return data.data() + y * stride; }
};

// A JPEG's Y, Cb and Cr planes as the file stores them, before libjpeg would upsample the chroma and
// convert to RGB: luma at the image's size, chroma at its subsampling (4:2:0 halves both sides). A caller
// that shrinks the image anyway can resample the planes and convert far fewer pixels.
struct JpegPlanes {
    int64_t width = 0, height = 0;          // the image (luma) size
    std::array<Plane, 3> planes;            // Y, Cb, Cr
    std::array<int, 3> step_x{}, step_y{};  // image pixels per plane sample: 1, or 2 for subsampled chroma
};

// Decodes the planes of a JPEG with three YCbCr components whose chroma (Cb and Cr alike) is subsampled
// by 1 or 2 per axis (nearly every photograph); returns false for other images (grayscale or CMYK JPEGs,
// unusual sampling, other formats), which decode_image handles. Corrupt, truncated or oversized files throw
// as in decode_image.
bool decode_jpeg_planes(const std::string& bytes, int64_t max_pixels, JpegPlanes& out);

// Baseline JPEG of an RGB image (for datasets and tests); chroma 4:2:0 (libjpeg's default) or 4:4:4.
std::string encode_jpeg(const Image& img, int quality = 90, bool subsample_chroma = true);
// PNG of an RGB image (for tests and plots).
std::string encode_png(const Image& img);

}  // namespace aclip
