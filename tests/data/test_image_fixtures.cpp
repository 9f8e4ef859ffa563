// test_image_fixtures.cpp: the image operations against what PIL and torchvision compute on the same
// inputs (tests/fixtures/image_ops.safetensors, made by tools/reference/make_image_fixtures.py):
// crop_resize against PIL's box resize with the bilinear filter, the colour operations against
// torchvision's functional ops on float images; a CMYK JPEG decoded to the RGB PIL makes of it.
#include <cmath>

#include "data/color.h"
#include "data/image.h"
#include "data/resize.h"
#include "engine/io/safetensors.h"
#include "test_util.h"

using namespace aclip;

namespace {

const SafetensorsFile& fixture() {
    static const SafetensorsFile f = load_safetensors(test::fixture_path("image_ops.safetensors"));
    return f;
}

}  // namespace

TEST_SUITE("data") {
    TEST_CASE("crop_resize equals PIL's bilinear box resize to within its two uint8 roundings") {
        const Tensor& src = fixture().get("resize.src");  // (H, W, 3) uint8
        Image img{src.shape()[1], src.shape()[0], src.to_vector<uint8_t>()};
        int cases = 0;
        for (int i = 0; fixture().has("resize." + std::to_string(i) + ".box"); ++i, ++cases) {
            CAPTURE(i);
            const std::vector<double> box =
                fixture().get("resize." + std::to_string(i) + ".box").to_vector<double>();
            const Tensor& expected = fixture().get("resize." + std::to_string(i) + ".out");  // (h, w, 3)
            const int64_t h = expected.shape()[0], w = expected.shape()[1];
            const std::vector<uint8_t> pil = expected.to_vector<uint8_t>();
            const std::vector<float> ours =
                crop_resize(img, box[0], box[1], box[2], box[3], h, w);  // (3, h, w)
            double worst = 0;
            for (int64_t y = 0; y < h; ++y)
                for (int64_t x = 0; x < w; ++x)
                    for (int64_t c = 0; c < 3; ++c)
                        worst =
                            std::max(worst, std::abs(ours[static_cast<size_t>((c * h + y) * w + x)] -
                                                     pil[static_cast<size_t>((y * w + x) * 3 + c)] / 255.0));
            // PIL rounds to uint8 after each of its two passes (0.5 / 255 each) and we do not
            CHECK(worst <= 1.0 / 255 + 1e-6);
        }
        CHECK(cases == 6);
    }

    TEST_CASE("a CMYK JPEG decodes to the RGB of PIL's convert(\"RGB\"), bit for bit") {
        const std::vector<uint8_t> jpeg = fixture().get("cmyk.jpeg").to_vector<uint8_t>();
        const Tensor& expected = fixture().get("cmyk.rgb");  // (H, W, 3) uint8
        const Image img = decode_image(std::string(jpeg.begin(), jpeg.end()));
        CHECK(img.height == expected.shape()[0]);
        CHECK(img.width == expected.shape()[1]);
        CHECK(img.rgb == expected.to_vector<uint8_t>());  // the same libjpeg, then integer arithmetic
    }

    TEST_CASE("colour operations equal torchvision's on float images") {
        const Tensor& src = fixture().get("color.src");  // (3, H, W)
        const std::vector<float> x = src.to_vector<float>();
        struct Case {
            const char* name;
            void (*apply)(std::vector<float>&, float);
            double tolerance;  // f32 rounding; or the reason for more
        };
        const Case cases[] = {
            {"brightness_up", adjust_brightness, 1e-6},
            {"brightness_down", adjust_brightness, 1e-6},
            // torchvision weighs red 0.2989 in its gray level, PIL (whose images A-CLIP augments) and we
            // 0.299
            {"contrast_down", adjust_contrast, 2e-4},
            {"contrast_up", adjust_contrast, 2e-4},
            {"saturation_down", adjust_saturation, 2e-4},
            {"saturation_up", adjust_saturation, 2e-4},
            {"hue_minus", shift_hue, 1e-5},  // through hue, saturation and value in f32
            {"hue_small", shift_hue, 1e-5},
            {"hue_plus", shift_hue, 1e-5},
            {"grayscale", [](std::vector<float>& v, float) { to_grayscale(v); }, 2e-4},
            {"solarize", solarize, 0.0},
        };
        for (const Case& c : cases) {
            const std::string name = c.name;
            CAPTURE(name);
            const std::string key = std::string("color.") + c.name;
            std::vector<float> ours = x;
            c.apply(ours, static_cast<float>(fixture().get(key + ".arg").to_vector<double>()[0]));
            const std::vector<float> expected = fixture().get(key + ".out").to_vector<float>();
            REQUIRE(ours.size() == expected.size());
            double worst = 0;
            for (size_t i = 0; i < ours.size(); ++i)
                worst = std::max(worst, std::abs(double(ours[i]) - expected[i]));
            CHECK(worst <= c.tolerance);
        }
    }
}
