// augment.cpp: see augment.h.
#include "data/augment.h"

#include <malloc.h>

#include <algorithm>
#include <cmath>
#include <mutex>

#include "engine/core/error.h"
#include "engine/ops/ops.h"

namespace aclip {

Box random_resized_crop(int64_t H, int64_t W, double scale_lo, double scale_hi, SampleRng& rng,
                        double ratio_lo, double ratio_hi) {
    const double area = static_cast<double>(H * W);
    for (int attempt = 0; attempt < 10; ++attempt) {
        double target = area * rng.uniform(scale_lo, scale_hi);
        double aspect = std::exp(rng.uniform(std::log(ratio_lo), std::log(ratio_hi)));
        auto w = static_cast<int64_t>(std::lround(std::sqrt(target * aspect)));
        auto h = static_cast<int64_t>(std::lround(std::sqrt(target / aspect)));
        if (w > 0 && h > 0 && w <= W && h <= H) return {rng.randint(0, H - h), rng.randint(0, W - w), h, w};
    }
    // fallback: the whole image, cut to the nearest allowed aspect, centred
    double in_ratio = static_cast<double>(W) / static_cast<double>(H);
    int64_t w = W, h = H;
    if (in_ratio < ratio_lo)
        h = static_cast<int64_t>(std::lround(static_cast<double>(W) / ratio_lo));
    else if (in_ratio > ratio_hi)
        w = static_cast<int64_t>(std::lround(static_cast<double>(H) * ratio_hi));
    return {(H - h) / 2, (W - w) / 2, h, w};
}

EmaCrop ema_crop_from_name(const std::string& name) {
    if (name == "union") return EmaCrop::Union;
    if (name == "official") return EmaCrop::Official;
    AC_FAIL("unknown aclip.ema_crop '", name, "'; accepted: union, official");
}

Box ema_crop_box(const Box& v1, const Box& v2, int64_t H, int64_t W, EmaCrop mode, SampleRng& rng) {
    const int64_t top0 = std::min(v1.top, v2.top);
    const int64_t bottom = std::max(v1.top + v1.height, v2.top + v2.height);
    const int64_t right = std::max(v1.left + v1.width, v2.left + v2.width);
    if (mode == EmaCrop::Union) {
        const int64_t left0 = std::min(v1.left, v2.left);
        int64_t top = top0 > 0 ? rng.randint(0, top0) : 0;
        int64_t left = left0 > 0 ? rng.randint(0, left0) : 0;
        int64_t h = rng.randint(bottom - top, H - top);  // still reaching the union's bottom and right
        int64_t w = rng.randint(right - left, W - left);
        return {top, left, h, w};
    }
    // The official code (datasets.py:263): left0 = min(left1, height2); the size is drawn from the
    // union's size, so the box can miss part of the views. Kept inside the image here.
    const int64_t left0 = std::min<int64_t>(std::min(v1.left, v2.height), W - 1);
    const int64_t h0 = bottom - top0, w0 = std::max<int64_t>(right - left0, 1);
    int64_t top = top0 > 0 ? rng.randint(0, top0) : top0;
    int64_t left = left0 > 0 ? rng.randint(0, left0) : left0;
    int64_t h = h0 < H ? rng.randint(std::min(h0, H - top), H - top) : H - top;
    int64_t w = w0 < W ? rng.randint(std::min(w0, W - left), W - left) : W - left;
    return {top, left, h, w};
}

void reuse_large_buffers() {
    static std::once_flag once;
    std::call_once(once, [] {
        mallopt(M_MMAP_THRESHOLD, 64 << 20);  // fixed: also stops glibc's own threshold adjustment
        mallopt(M_TRIM_THRESHOLD, 256 << 20);
    });
}

AclipViews aclip_train_transform(const std::string& bytes, const TransformConfig& cfg, SampleRng& rng) {
    ImageInfo info = probe_image(bytes, cfg.max_pixels);
    const int64_t H = info.height, W = info.width, S = cfg.size;
    AclipViews v;
    v.boxes[0] = random_resized_crop(H, W, cfg.scale_lo, cfg.scale_hi, rng);
    v.boxes[1] = random_resized_crop(H, W, cfg.scale_lo, cfg.scale_hi, rng);
    v.boxes[2] = ema_crop_box(v.boxes[0], v.boxes[1], H, W, cfg.ema_crop, rng);
    // Decode only as many pixels as the smallest crop needs: the largest DCT shrink that keeps it >= S.
    int64_t smallest = INT64_MAX;
    for (const Box& b : v.boxes) smallest = std::min({smallest, b.height, b.width});
    v.scale_denom = 1;
    if (info.jpeg)
        for (int d : {8, 4, 2})
            if (smallest / d >= S) {
                v.scale_denom = d;
                break;
            }
    JpegPlanes planes;
    const bool from_planes =
        cfg.jpeg_planes && v.scale_denom == 1 && decode_jpeg_planes(bytes, cfg.max_pixels, planes);
    Image img;
    if (!from_planes) img = decode_image(bytes, v.scale_denom, cfg.max_pixels);
    const double sy = from_planes ? 1.0 : static_cast<double>(img.height) / static_cast<double>(H);
    const double sx = from_planes ? 1.0 : static_cast<double>(img.width) / static_cast<double>(W);
    std::vector<float> chw;              // (3, S, S), reused by the three views
    auto resample = [&](const Box& b) {  // into chw: RGB in [0, 1], or Y, Cb, Cr in 0..255 from the planes
        if (!from_planes) {
            chw = crop_resize(img, b.top * sy, b.left * sx, b.height * sy, b.width * sx, S, S);
            return;
        }
        chw.resize(static_cast<size_t>(3 * S * S));
        for (size_t c : {0, 1}) {  // luma, then both chroma planes (one size, one geometry)
            // plane sample i covers image pixels [f i, f (i + 1))
            const double fy = planes.step_y[c], fx = planes.step_x[c];
            std::vector<const Plane*> which = {&planes.planes[c]};
            if (c == 1) which.push_back(&planes.planes[2]);
            resize_planes(which, static_cast<double>(b.top) / fy, static_cast<double>(b.left) / fx,
                          static_cast<double>(b.height) / fy, static_cast<double>(b.width) / fx, S, S,
                          chw.data() + c * S * S);
        }
    };
    auto view = [&](const Box& b, bool augment) {
        resample(b);
        return finish_view(chw, S, S, from_planes, augment ? &cfg.color : nullptr, rng);
    };
    v.view1 = view(v.boxes[0], true);
    v.view2 = view(v.boxes[1], true);
    v.ema = view(v.boxes[2], false);  // the teacher sees the crop without colour augmentation
    return v;
}

Bytes eval_transform(const std::string& bytes, const TransformConfig& cfg) {
    Image img = decode_image(bytes, 1, cfg.max_pixels);
    const int64_t S = cfg.size;
    // resize so the short side is S (torchvision Resize(S)), then take the centre S x S
    const double scale = static_cast<double>(std::min(img.height, img.width)) / static_cast<double>(S);
    const double side = S * scale;
    return quantize_to_u8(crop_resize(img, (static_cast<double>(img.height) - side) / 2,
                                      (static_cast<double>(img.width) - side) / 2, side, side, S, S));
}

Tensor normalize_images(const Tensor& images, const std::array<float, 3>& mean,
                        const std::array<float, 3>& std) {
    AC_CHECK(images.dtype() == DType::U8 && images.dim() == 4 && images.size(1) == 3,
             "normalize_images: expected (B, 3, H, W) u8 images, got ", images.desc());
    std::vector<float> scale(3), shift(3);
    for (size_t c = 0; c < 3; ++c) {
        scale[c] = 1.0f / (255.0f * std[c]);
        shift[c] = -mean[c] / std[c];
    }
    const Device d = images.device();
    return add(mul(images.to(DType::F32), from_vector(scale, {1, 3, 1, 1}).to(d)),
               from_vector(shift, {1, 3, 1, 1}).to(d));  // (B, 3, H, W)
}

}  // namespace aclip
