// bilinear.h: the taps of a bilinear resize with align_corners=False and no antialiasing (PyTorch's
// F.interpolate), shared by the CPU op, the CUDA kernel and the attentive mask, which evaluates a resized
// map only where it is read. In double, as all three compute it, so they agree bit for bit.
#pragma once
#include <cmath>
#include <cstdint>

#include "engine/math/host_device.h"

namespace aclip {

// Output coordinate o of an axis resized from in to out samples reads source samples i0 and i1, the
// second with weight w1.
struct BilinearTap {
    int64_t i0, i1;
    double w1;
};

AC_HD BilinearTap bilinear_tap(int64_t o, int64_t in, int64_t out) {
    const double scale = static_cast<double>(in) / static_cast<double>(out);
    double src = (static_cast<double>(o) + 0.5) * scale - 0.5;
    if (src < 0.0) src = 0.0;
    int64_t lo = static_cast<int64_t>(floor(src));
    if (lo > in - 1) lo = in - 1;
    return BilinearTap{lo, lo + 1 < in ? lo + 1 : in - 1, src - static_cast<double>(lo)};
}

// The value at a point between four samples: v01 is right of v00, v10 below it.
AC_HD double bilinear_mix(double v00, double v01, double v10, double v11, double wy, double wx) {
    return (1 - wy) * ((1 - wx) * v00 + wx * v01) + wy * ((1 - wx) * v10 + wx * v11);
}

}  // namespace aclip
