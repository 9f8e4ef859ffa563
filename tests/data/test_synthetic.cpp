// test_synthetic.cpp: the embedded default dataset: deterministic scenes whose captions name what is
// drawn, masks that cover the objects, and zero-shot classes.
#include <algorithm>

#include "data/synthetic.h"
#include "test_util.h"

using namespace aclip;

TEST_SUITE("data") {
    TEST_CASE("scenes are deterministic, captioned by what they show, and masked where the objects are") {
        Scene a = render_scene(3, 17, 64), b = render_scene(3, 17, 64), c = render_scene(3, 18, 64);
        CHECK(a.image.rgb == b.image.rgb);
        CHECK(a.image.rgb != c.image.rgb);
        for (uint64_t i = 0; i < 50; ++i) {
            Scene s = render_scene(1, i, 48);
            REQUIRE((s.objects.size() == 1 || s.objects.size() == 2));
            CHECK(s.captions.size() == 4);
            for (const SceneObject& o : s.objects) {
                CHECK(s.captions[0].find(kSyntheticColors[static_cast<size_t>(o.color)] + " " +
                                         kSyntheticShapes[static_cast<size_t>(o.shape)]) !=
                      std::string::npos);
                CHECK(s.captions[0].find(o.large ? "large" : "small") != std::string::npos);
            }
            int64_t covered =
                std::count_if(s.mask.rgb.begin(), s.mask.rgb.end(), [](uint8_t v) { return v > 127; });
            CHECK(covered > 3 * 20);  // even a small object covers dozens of pixels at 48 px
            CHECK(covered < 3 * 48 * 48 / 2);
        }
        Scene single = render_scene(2, 5, 64, true);
        CHECK(single.objects.size() == 1);
        int64_t cls = synthetic_class(single.objects[0]);
        CHECK((cls >= 0 && cls < 48));
        CHECK(synthetic_class_names()[static_cast<size_t>(cls)] ==
              kSyntheticColors[static_cast<size_t>(single.objects[0].color)] + " " +
                  kSyntheticShapes[static_cast<size_t>(single.objects[0].shape)]);
    }
}
