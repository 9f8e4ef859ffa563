// augment.h: A-CLIP's image transforms (aclip-method.md 2.2), on decoded RGB images.
// Training: two RandomResizedCrop views (scale 0.5-1, aspect 3/4-4/3) and the EMA "zoom-out" crop that
// covers both, each with its box in original-image pixels; colour jitter, grayscale, Gaussian blur and
// solarize on the two views only; antialiased bilinear resize; normalisation. Evaluation: resize of the
// short side and a centre crop. All randomness comes from a per-sample Philox stream, so the same seed
// and sample give the same crops on any thread. The pieces live in resize.h and color.h.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "data/color.h"
#include "data/image.h"
#include "data/resize.h"
#include "data/sample_rng.h"
#include "engine/core/tensor.h"

namespace aclip {

struct Box {
    int64_t top = 0, left = 0, height = 0, width = 0;  // in original-image pixels
};

// torchvision's RandomResizedCrop.get_params: 10 tries of area and log-aspect, then a centre fallback.
Box random_resized_crop(int64_t H, int64_t W, double scale_lo, double scale_hi, SampleRng& rng,
                        double ratio_lo = 3.0 / 4.0, double ratio_hi = 4.0 / 3.0);

enum class EmaCrop { Union, Official };
EmaCrop ema_crop_from_name(const std::string& name);  // "union" or "official"
// The EMA crop: Union (default) encloses both views and grows at random; Official reproduces the
// official code, which takes view 2's height for its left edge and may not enclose the views.
Box ema_crop_box(const Box& v1, const Box& v2, int64_t H, int64_t W, EmaCrop mode, SampleRng& rng);

struct TransformConfig {
    int64_t size = 224;
    double scale_lo = 0.5, scale_hi = 1.0;
    EmaCrop ema_crop = EmaCrop::Union;
    ColorAugment color;
    std::array<float, 3> mean = {0.485f, 0.456f, 0.406f}, std = {0.229f, 0.224f, 0.225f};  // ImageNet
    int64_t max_pixels = kMaxImagePixels;
    // Training views of a YCbCr JPEG are resampled from its stored planes (chroma at its own resolution)
    // and converted to RGB at the view's size: 1.14x faster than decoding to RGB first, as PIL does, and
    // equal to within a few levels at sharp colour edges (tests/data/test_images.cpp).
    bool jpeg_planes = true;
};

// The views leave the CPU as 8-bit pixels, as PIL images are: a quarter of the bytes of floats to queue,
// batch and copy to the GPU. normalize_images turns a batch of them into the model's input there.
struct AclipViews {
    Bytes view1, view2, ema;   // (3, size, size) each, 0..255
    std::array<Box, 3> boxes;  // view 1, view 2, EMA crop, in original pixels
    int scale_denom = 1;       // the JPEG DCT downscale used
};

// Keeps the large buffers of image work (decoded images, crops: 0.1-1 MiB each) in the heap, where freed
// ones are reused. glibc otherwise maps each allocation over its mmap threshold afresh and unmaps it on
// free, so every sample paid page faults and zeroing: about 20% of the pipeline's time by perf, and
// 175 -> 255 samples/s/core once removed (tools/bench/compare_data.sh). Process-wide, idempotent; the
// loader and the data benchmark call it.
void reuse_large_buffers();

// The training transform of one encoded image (throws aclip::Error when it cannot be decoded).
AclipViews aclip_train_transform(const std::string& image_bytes, const TransformConfig& cfg, SampleRng& rng);

// The evaluation transform: resize the short side to size (antialiased bilinear), centre-crop size x size,
// round to 8 bits as the training views are. Output (3, size, size); normalize_images makes the model's
// input.
Bytes eval_transform(const std::string& image_bytes, const TransformConfig& cfg);

// A batch of 8-bit images (B, 3, H, W) u8 -> (x / 255 - mean[c]) / std[c] as f32, on the batch's device.
Tensor normalize_images(const Tensor& images, const std::array<float, 3>& mean,
                        const std::array<float, 3>& std);

}  // namespace aclip
