// resize.h: cropping and resizing with PIL's antialiased bilinear filter, the resampling that
// torchvision's RandomResizedCrop and Resize apply to PIL images. Output is planar, (3, H, W), because
// every later step (colour augmentation, normalisation, the model's input) works on planes. resize_plane
// does the same for one plane, such as a JPEG's luma or chroma (image.h: decode_jpeg_planes).
#pragma once
#include <cstdint>
#include <vector>

#include "data/image.h"

namespace aclip {

// The region (top, left, height, width), in img pixels (fractions allowed), resized to out_h x out_w.
// Output: (3, out_h, out_w) floats in [0, 1].
std::vector<float> crop_resize(const Image& img, double top, double left, double height, double width,
                               int64_t out_h, int64_t out_w);

// One plane's region (plane pixels, fractions allowed) resized to out (out_h, out_w) floats, in the
// plane's units (0..255).
void resize_plane(const Plane& plane, double top, double left, double height, double width, int64_t out_h,
                  int64_t out_w, float* out);

}  // namespace aclip
