// resize.h: cropping and resizing with PIL's antialiased bilinear filter, the resampling that
// torchvision's RandomResizedCrop and Resize apply to PIL images. Output is planar, (3, H, W), because
// every later step (colour augmentation, normalisation, the model's input) works on planes. resize_planes
// does the same for planes, such as a JPEG's luma or chroma (image.h: decode_jpeg_planes).
#pragma once
#include <cstdint>
#include <vector>

#include "data/image.h"

namespace aclip {

// The region (top, left, height, width), in img pixels (fractions allowed), resized to out_h x out_w.
// Output: (3, out_h, out_w) floats in [0, 1].
std::vector<float> crop_resize(const Image& img, double top, double left, double height, double width,
                               int64_t out_h, int64_t out_w);

// The same region (plane pixels, fractions allowed) of planes of one size, each resized to (out_h, out_w)
// floats in the planes' units (0..255): out is (planes, out_h, out_w). The filter taps are computed once.
void resize_planes(const std::vector<const Plane*>& planes, double top, double left, double height,
                   double width, int64_t out_h, int64_t out_w, float* out);

}  // namespace aclip
