// test_images.cpp: decoding (JPEG with DCT scaling, PNG), every kind of bad image, and A-CLIP's crops
// and augmentations: boxes, the EMA crop, antialiased resizing, colour operations, determinism.
#include <cmath>

#include "data/augment.h"
#include "data/image.h"
#include "engine/math/philox.h"
#include "test_util.h"

using namespace aclip;
using aclip::test::error_of;

namespace {

Image test_image(int64_t W, int64_t H) {  // smooth gradients and a disc: compresses well, looks like a photo
    Image img{W, H, std::vector<uint8_t>(static_cast<size_t>(W * H * 3))};
    for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x) {
            uint8_t* p = img.pixel(y, x);
            bool disc = (x - W / 2) * (x - W / 2) + (y - H / 2) * (y - H / 2) < (H / 4) * (H / 4);
            p[0] = static_cast<uint8_t>(255 * x / W);
            p[1] = static_cast<uint8_t>(disc ? 220 : 255 * y / H);
            p[2] = static_cast<uint8_t>(disc ? 30 : 128);
        }
    return img;
}

double mean_abs_diff(const Image& a, const Image& b) {
    double s = 0;
    for (size_t i = 0; i < a.rgb.size(); ++i) s += std::abs(a.rgb[i] - b.rgb[i]);
    return s / static_cast<double>(a.rgb.size());
}

bool inside(const Box& b, int64_t H, int64_t W) {
    return b.top >= 0 && b.left >= 0 && b.height > 0 && b.width > 0 && b.top + b.height <= H &&
           b.left + b.width <= W;
}

bool contains(const Box& outer, const Box& in) {
    return outer.top <= in.top && outer.left <= in.left && outer.top + outer.height >= in.top + in.height &&
           outer.left + outer.width >= in.left + in.width;
}

}  // namespace

TEST_SUITE("data") {
    TEST_CASE("JPEG and PNG decode; JPEG shrinks in the DCT") {
        Image src = test_image(300, 200);
        std::string jpg = encode_jpeg(src, 95);
        Image back = decode_image(jpg);
        REQUIRE(back.width == 300);
        REQUIRE(back.height == 200);
        CHECK(mean_abs_diff(src, back) < 3.0);  // quality 95: a couple of levels on average
        ImageInfo info = probe_image(jpg);
        CHECK((info.jpeg && info.width == 300 && info.height == 200));
        Image quarter = decode_image(jpg, 4);
        CHECK(quarter.width == 75);
        CHECK(quarter.height == 50);
        Image png = decode_image(encode_png(src));
        CHECK(png.rgb == src.rgb);  // lossless
    }

    TEST_CASE("bad images are errors with a reason: truncated, corrupt, unknown, bombs") {
        std::string jpg = encode_jpeg(test_image(120, 80));
        CHECK(error_of([&] { decode_image(jpg.substr(0, jpg.size() / 2)); }).find("truncated") !=
              std::string::npos);
        CHECK(error_of([&] { decode_image(jpg.substr(0, 40)); }).find("jpeg:") != std::string::npos);
        CHECK(error_of([] { decode_image(std::string(500, 'x')); }).find("unknown or corrupt format") !=
              std::string::npos);
        CHECK(error_of([] { decode_image(""); }).find("unknown or corrupt format") != std::string::npos);
        std::string png = encode_png(test_image(4, 4));
        const uint32_t dims[2] = {15000, 13000};  // 195 M pixels: over PIL's limit, under stb's own
        for (int k = 0; k < 2; ++k)               // IHDR width and height, big-endian
            for (int b = 0; b < 4; ++b)
                png[16 + 4 * k + b] = static_cast<char>((dims[k] >> (24 - 8 * b)) & 0xff);
        CHECK(error_of([&] { decode_image(png); }).find("decompression bomb") != std::string::npos);
    }

    TEST_CASE("RandomResizedCrop: inside the image, scale 0.5-1, aspect 3/4-4/3, seeded") {
        for (uint64_t sample = 0; sample < 500; ++sample) {
            SampleRng rng(7, sample);
            Box b = random_resized_crop(375, 500, 0.5, 1.0, rng);
            REQUIRE(inside(b, 375, 500));
            double area = static_cast<double>(b.height * b.width) / (375.0 * 500.0);
            double aspect = static_cast<double>(b.width) / static_cast<double>(b.height);
            CHECK(area >= 0.49);  // rounding of the sides moves the area a little
            CHECK(area <= 1.0);
            CHECK(aspect >= 0.74);
            CHECK(aspect <= 1.35);
        }
        SampleRng a(1, 5), b(1, 5), c(1, 6);
        Box x = random_resized_crop(375, 500, 0.5, 1.0, a), y = random_resized_crop(375, 500, 0.5, 1.0, b),
            z = random_resized_crop(375, 500, 0.5, 1.0, c);
        CHECK((x.top == y.top && x.left == y.left && x.height == y.height && x.width == y.width));
        CHECK_FALSE((x.top == z.top && x.left == z.left && x.height == z.height && x.width == z.width));
    }

    TEST_CASE("the EMA crop encloses both views (union), or follows the official code inside the image") {
        int enclosed_official = 0;
        for (uint64_t sample = 0; sample < 300; ++sample) {
            SampleRng rng(3, sample);
            Box v1 = random_resized_crop(375, 500, 0.5, 1.0, rng),
                v2 = random_resized_crop(375, 500, 0.5, 1.0, rng);
            Box e = ema_crop_box(v1, v2, 375, 500, EmaCrop::Union, rng);
            REQUIRE(inside(e, 375, 500));
            CHECK(contains(e, v1));
            CHECK(contains(e, v2));
            Box o = ema_crop_box(v1, v2, 375, 500, EmaCrop::Official, rng);
            REQUIRE(inside(o, 375, 500));
            enclosed_official += contains(o, v1) && contains(o, v2);
        }
        CHECK(enclosed_official < 300);  // the official variant misses part of the views at times
        CHECK(error_of([] { ema_crop_from_name("both"); }).find("accepted: union, official") !=
              std::string::npos);
    }

    TEST_CASE("antialiased resize: constants stay constant, same size is the identity") {
        Image flat{40, 30, std::vector<uint8_t>(40 * 30 * 3, 100)};
        for (float v : crop_resize(flat, 3.5, 2.25, 20, 30, 7, 9))
            CHECK(v == doctest::Approx(100.0 / 255).epsilon(1e-6));
        Image src = test_image(16, 12);
        std::vector<float> same = crop_resize(src, 0, 0, 12, 16, 12, 16);  // (3, 12, 16)
        for (int c = 0; c < 3; ++c)
            for (int64_t y = 0; y < 12; ++y)
                for (int64_t x = 0; x < 16; ++x)
                    CHECK(same[static_cast<size_t>((c * 12 + y) * 16 + x)] ==
                          doctest::Approx(src.pixel(y, x)[c] / 255.0).epsilon(1e-6));
        // shrinking by 4 averages: a one-pixel checkerboard becomes mid gray
        Image checker{32, 32, std::vector<uint8_t>(32 * 32 * 3)};
        for (int64_t y = 0; y < 32; ++y)
            for (int64_t x = 0; x < 32; ++x)
                for (int c = 0; c < 3; ++c) checker.pixel(y, x)[c] = ((x + y) % 2) ? 255 : 0;
        for (float v : crop_resize(checker, 4, 4, 24, 24, 6, 6)) CHECK(std::abs(v - 0.5) < 0.05);
        // a large shrink (an eval resize of a big photo): 2000 columns to 20, every output the mean
        Image wide{2000, 3, std::vector<uint8_t>(2000 * 3 * 3)};
        for (int64_t x = 0; x < 2000; ++x)
            for (int c = 0; c < 3; ++c) wide.pixel(1, x)[c] = x % 2 ? 200 : 100;
        for (float v : crop_resize(wide, 1, 0, 1, 2000, 1, 20))
            CHECK(v == doctest::Approx(150.0 / 255).epsilon(1e-3));
    }

    TEST_CASE("colour operations: grayscale, solarize, jitter bounds") {
        std::vector<float> x = crop_resize(test_image(64, 48), 0, 0, 48, 64, 24, 32);
        ColorAugment gray_only{0, 0, 0, 0, 0, 1.0, 0, 0.1, 2.0, 0};
        std::vector<float> g = x;
        SampleRng rng(1, 1);
        color_augment(g, 24, 32, gray_only, rng);
        const size_t n = g.size() / 3;  // planes
        for (size_t i = 0; i < n; ++i) CHECK((g[i] == g[n + i] && g[n + i] == g[2 * n + i]));
        ColorAugment solarize_only{0, 0, 0, 0, 0, 0, 0, 0.1, 2.0, 1.0};
        std::vector<float> s = x;
        color_augment(s, 24, 32, solarize_only, rng);
        for (size_t i = 0; i < s.size(); ++i) CHECK(s[i] == (x[i] >= 128.0f / 255.0f ? 1.0f - x[i] : x[i]));
        ColorAugment all{1.0, 0.4, 0.4, 0.2, 0.1, 0.0, 1.0, 0.1, 2.0, 0.0};
        std::vector<float> j = x;
        color_augment(j, 24, 32, all, rng);
        CHECK(j != x);
        for (float v : j) CHECK((v >= 0.0f && v <= 1.0f));
    }

    TEST_CASE("a fused colour chain equals its operations applied one by one, in the drawn order") {
        const int64_t H = 7, W = 9;  // 63 pixels: three full register chunks and a partial one
        std::vector<float> x(static_cast<size_t>(3 * H * W));
        for (size_t i = 0; i < x.size(); ++i) x[i] = uniform_from_word(philox_word(9, 3, i));
        const ColorAugment cfg{1.0, 0.4, 0.4, 0.2, 0.1, 0.5, 0.0, 0.1, 2.0, 0.5};  // jitter always
        for (uint64_t sample = 0; sample < 24; ++sample) {  // the contrast step lands in every position
            CAPTURE(sample);
            std::vector<float> fused = x, ref = x;
            SampleRng a(4, sample), b(4, sample);
            color_augment(fused, H, W, cfg, a);
            // the same draws as color_augment makes, then each operation on the whole image
            REQUIRE(b.coin(cfg.p_jitter));
            const float bright = static_cast<float>(b.uniform(0.6, 1.4)),
                        c = static_cast<float>(b.uniform(0.6, 1.4));
            const float sat = static_cast<float>(b.uniform(0.8, 1.2)),
                        hue = static_cast<float>(b.uniform(-0.1, 0.1));
            int order[4] = {0, 1, 2, 3};
            for (int i = 3; i > 0; --i) std::swap(order[i], order[b.randint(0, i)]);
            for (int op : order) {
                if (op == 0) adjust_brightness(ref, bright);
                if (op == 1) adjust_contrast(ref, c);
                if (op == 2) adjust_saturation(ref, sat);
                if (op == 3) shift_hue(ref, hue);
            }
            if (b.coin(cfg.p_gray)) to_grayscale(ref);
            b.coin(cfg.p_blur);  // never
            if (b.coin(cfg.p_solarize)) solarize(ref, 128.0f / 255.0f);
            for (size_t i = 0; i < x.size(); ++i) REQUIRE(fused[i] == doctest::Approx(ref[i]).epsilon(1e-6));
        }
    }

    TEST_CASE("Gaussian blur equals the textbook separable sum with replicated edges") {
        const int64_t H = 13, W = 17;
        std::vector<float> x(static_cast<size_t>(3 * H * W));
        for (size_t i = 0; i < x.size(); ++i) x[i] = uniform_from_word(philox_word(5, 1, i));
        ColorAugment blur_only{0, 0, 0, 0, 0, 0, 1.0, 1.3, 1.3, 0};  // sigma 1.3: radius 4
        std::vector<float> y = x;
        SampleRng rng(2, 2);
        color_augment(y, H, W, blur_only, rng);
        const double sigma = 1.3;
        const int64_t radius = 4;
        double total = 0;
        for (int64_t i = -radius; i <= radius; ++i) total += std::exp(-0.5 * i * i / (sigma * sigma));
        auto at = [&](int64_t c, int64_t r, int64_t q) {
            return double(x[static_cast<size_t>((c * H + std::clamp<int64_t>(r, 0, H - 1)) * W +
                                                std::clamp<int64_t>(q, 0, W - 1))]);
        };
        for (int64_t c = 0; c < 3; ++c)
            for (int64_t r = 0; r < H; ++r)
                for (int64_t q = 0; q < W; ++q) {
                    double ref = 0;  // the two passes' edge replication is the clamp of both coordinates
                    for (int64_t i = -radius; i <= radius; ++i)
                        for (int64_t j = -radius; j <= radius; ++j)
                            ref += std::exp(-0.5 * (i * i + j * j) / (sigma * sigma)) / (total * total) *
                                   at(c, r + i, q + j);
                    REQUIRE(y[static_cast<size_t>((c * H + r) * W + q)] ==
                            doctest::Approx(ref).epsilon(1e-5));
                }
    }

    TEST_CASE("hue rotation equals the HSV round trip computed in f64, and leaves grays alone") {
        std::vector<float> x;
        for (int i = 0; i < 4000; ++i) x.push_back(uniform_from_word(philox_word(77, 0, i)));
        const size_t n = 4000 / 3;  // pixels; planes (3, n)
        x.resize(3 * n);
        x[0] = x[n] = x[2 * n] = 0.3f;  // a gray pixel
        for (float shift : {-0.1f, 0.0f, 0.037f, 0.1f, 0.5f}) {
            std::vector<float> y = x;
            shift_hue(y, shift);
            for (size_t i = 0; i < n; ++i) {
                double r = x[i], g = x[n + i], b = x[2 * n + i];
                double mx = std::max({r, g, b}), mn = std::min({r, g, b}), d = mx - mn;
                double ref[3] = {r, g, b};
                if (d > 0) {  // the textbook conversion, with branches, in double
                    double h = mx == r ? (g - b) / d : (mx == g ? 2 + (b - r) / d : 4 + (r - g) / d);
                    h = h / 6 + shift;
                    h -= std::floor(h);
                    double s = d / mx, v = mx, f = h * 6, k = std::floor(f), t = f - k;
                    double pp = v * (1 - s), q = v * (1 - s * t), u = v * (1 - s * (1 - t));
                    const double table[6][3] = {{v, u, pp}, {q, v, pp}, {pp, v, u},
                                                {pp, q, v}, {u, pp, v}, {v, pp, q}};
                    for (int c = 0; c < 3; ++c) ref[c] = table[static_cast<int>(k) % 6][c];
                }
                for (int c = 0; c < 3; ++c) REQUIRE(std::abs(y[c * n + i] - ref[c]) < 1e-5);  // f32 rounding
            }
            CHECK(y[0] == 0.3f);
        }
    }

    TEST_CASE("8-bit views: rounded to nearest, normalised per channel by normalize_images") {
        CHECK(quantize_to_u8({0.0f, 0.5f / 255, 0.49f / 255, 1.0f, 128.4f / 255}) ==
              Bytes{0, 1, 0, 255, 128});
        std::vector<uint8_t> pixels(2 * 3 * 2 * 2);
        for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 11);
        const std::array<float, 3> mean = {0.5f, 0.25f, 0.125f}, std = {0.5f, 0.25f, 2.0f};
        Tensor x = normalize_images(from_vector(pixels, {2, 3, 2, 2}), mean, std);  // (2, 3, 2, 2)
        CHECK(x.dtype() == DType::F32);
        std::vector<float> v = x.to_vector<float>();
        for (size_t i = 0; i < pixels.size(); ++i) {
            const size_t c = (i / 4) % 3;
            CHECK(v[i] == doctest::Approx((pixels[i] / 255.0 - mean[c]) / std[c]).epsilon(1e-6));  // f32
        }
        CHECK(error_of([&] { normalize_images(x, mean, std); }).find("u8 images") != std::string::npos);
    }

    TEST_CASE("JPEG planes: resize_planes equals crop_resize per channel; YCbCr -> RGB equals libjpeg's") {
        // 4:4:4, so libjpeg's RGB output involves no chroma upsampling: converting our planes at full size
        // must give its pixels, to within its fixed-point rounding (one level)
        const Image src = test_image(67, 45);
        const std::string jpg = encode_jpeg(src, 95, false);
        JpegPlanes jp;
        REQUIRE(decode_jpeg_planes(jpg, kMaxImagePixels, jp));
        CHECK(jp.step_x == std::array<int, 3>{1, 1, 1});
        const Image rgb = decode_image(jpg);
        std::vector<float> chw(3 * 45 * 67);
        resize_planes({&jp.planes[0], &jp.planes[1], &jp.planes[2]}, 0, 0, 45, 67, 45, 67, chw.data());
        SampleRng unused(0, 0);                                              // no augmentation draws
        const Bytes ours = finish_view(chw, 45, 67, true, nullptr, unused);  // (3, 45, 67)
        int worst = 0;
        for (int64_t y = 0; y < 45; ++y)
            for (int64_t x = 0; x < 67; ++x)
                for (int64_t c = 0; c < 3; ++c)
                    worst = std::max(worst, std::abs(int(ours[static_cast<size_t>((c * 45 + y) * 67 + x)]) -
                                                     int(rgb.pixel(y, x)[c])));
        CHECK(worst <= 1);
        // resize_planes is crop_resize on one channel (a gray image has three equal ones)
        Plane luma = jp.planes[0];
        Image gray{luma.width, luma.height, {}};
        for (int64_t y = 0; y < luma.height; ++y)
            for (int64_t x = 0; x < luma.width; ++x)
                for (int c = 0; c < 3; ++c) gray.rgb.push_back(luma.row(y)[x]);
        for (auto [t, l, h, w, oh, ow] : {std::array<double, 6>{3.5, 2.25, 30, 41.5, 13, 17},
                                          {0, 0, 45, 67, 20, 33},
                                          {5, 7, 12, 10, 30, 25},
                                          {0, 0, 45, 67, 6, 40},
                                          {0, 0, 45, 67, 15, 20},    // 3.35x: the 64-float windows
                                          {2, 1, 40, 66, 9, 12}}) {  // 5.5x: beyond the AVX-512 windows
            const auto H = static_cast<int64_t>(oh), W = static_cast<int64_t>(ow);
            std::vector<float> ours(static_cast<size_t>(H * W));
            resize_planes({&luma}, t, l, h, w, H, W, ours.data());
            const std::vector<float> ref = crop_resize(gray, t, l, h, w, H, W);  // (3, H, W) in [0, 1]
            for (int64_t i = 0; i < H * W; ++i)
                REQUIRE(ours[static_cast<size_t>(i)] ==
                        doctest::Approx(ref[static_cast<size_t>(i)] * 255).epsilon(1e-5));
        }
        // grayscale JPEGs and other formats are left to decode_image
        Image g = src;
        CHECK_FALSE(decode_jpeg_planes(encode_png(g), kMaxImagePixels, jp));
    }

    TEST_CASE("training views from a 4:2:0 JPEG's planes are within a few levels of decoding to RGB first") {
        const std::string jpg = encode_jpeg(test_image(500, 375), 90);  // libjpeg's default: 4:2:0
        JpegPlanes jp;
        REQUIRE(decode_jpeg_planes(jpg, kMaxImagePixels, jp));
        CHECK(jp.step_x == std::array<int, 3>{1, 2, 2});
        CHECK(jp.step_y == std::array<int, 3>{1, 2, 2});
        TransformConfig planes_cfg, rgb_cfg;
        planes_cfg.size = rgb_cfg.size = 224;  // no DCT scaling of a 500x375 image: the planes path
        planes_cfg.color = rgb_cfg.color =
            ColorAugment{0, 0, 0, 0, 0, 0, 0, 0.1, 2.0, 0};  // no colour changes
        rgb_cfg.jpeg_planes = false;
        double total = 0, worst = 0;
        size_t n = 0, over4 = 0;
        for (uint64_t sample = 0; sample < 8; ++sample) {
            SampleRng r1(5, sample), r2(5, sample);
            AclipViews a = aclip_train_transform(jpg, planes_cfg, r1),
                       b = aclip_train_transform(jpg, rgb_cfg, r2);
            for (auto [x, y] : {std::pair{&a.view1, &b.view1}, {&a.view2, &b.view2}, {&a.ema, &b.ema}})
                for (size_t i = 0; i < x->size(); ++i) {
                    const double d = std::abs(int((*x)[i]) - int((*y)[i]));
                    total += d, worst = std::max(worst, d), ++n, over4 += d > 4;
                }
        }
        MESSAGE("planes vs RGB first: mean ", total / n, ", max ", worst, " levels, ", over4, " of ", n,
                " over 4");
        // Chroma is resampled from its own samples instead of libjpeg's upsampled ones, and converted after
        // resampling instead of before, so clamping out-of-gamut colours happens later: the two differ only
        // where a saturated colour changes within a couple of pixels (the disc's edge here). Measured: mean
        // 0.26 levels, 0.47% of values more than 4 levels apart, at most 40.
        CHECK(total / n < 0.5);
        CHECK(over4 < n / 100);
        CHECK(worst <= 64);
    }

    TEST_CASE("the A-CLIP training transform: three views, their boxes, DCT scaling, determinism") {
        std::string jpg = encode_jpeg(test_image(1600, 1200), 90);
        TransformConfig cfg;
        cfg.size = 64;
        SampleRng r1(11, 3), r2(11, 3);
        AclipViews a = aclip_train_transform(jpg, cfg, r1), b = aclip_train_transform(jpg, cfg, r2);
        CHECK(a.view1.size() == 3 * 64 * 64);
        CHECK(a.ema.size() == 3 * 64 * 64);
        CHECK(a.view1 == b.view1);
        CHECK(a.view2 == b.view2);
        CHECK(a.scale_denom == 8);  // the smallest crop is >= 600 px, so 1/8 still gives >= 64
        for (const Box& box : a.boxes) CHECK(inside(box, 1200, 1600));
        CHECK(contains(a.boxes[2], a.boxes[0]));
        // normalised with ImageNet statistics: a mid-gray image maps to about (0.5 - mean) / std
        Image mid{50, 40, std::vector<uint8_t>(50 * 40 * 3, 128)};
        const Bytes e = eval_transform(encode_png(mid), cfg);
        CHECK(e == Bytes(3 * 64 * 64, 128));
        CHECK(error_of([&] {
                  SampleRng r(0, 0);
                  aclip_train_transform("not an image", cfg, r);
              }).find("image") != std::string::npos);
    }
}
