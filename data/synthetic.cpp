// synthetic.cpp: see synthetic.h. Shapes are rasterised with 4x4 supersampling for smooth edges.
#include "data/synthetic.h"

#include <algorithm>
#include <cmath>

#include "data/augment.h"

namespace aclip {

const std::vector<std::string> kSyntheticColors = {"red",    "green",  "blue",  "yellow",
                                                   "purple", "orange", "white", "cyan"};
const std::vector<std::string> kSyntheticShapes = {"circle", "square", "triangle", "star", "cross", "ring"};

namespace {

const uint8_t kRgb[8][3] = {{220, 30, 30},  {40, 180, 60},  {40, 70, 220},   {235, 220, 40},
                            {150, 50, 190}, {245, 140, 20}, {245, 245, 245}, {40, 210, 220}};
const char* kPlaces[5] = {"at the top left", "at the top right", "at the bottom left", "at the bottom right",
                          "in the center"};
const double kPlaceXY[5][2] = {{0.27, 0.27}, {0.73, 0.27}, {0.27, 0.73}, {0.73, 0.73}, {0.5, 0.5}};

// Is (x, y), relative to the shape's centre in units of its radius, inside the shape?
bool inside_shape(int shape, double x, double y) {
    const double r = std::sqrt(x * x + y * y);
    switch (shape) {
        case 0:
            return r <= 1.0;
        case 1:
            return std::abs(x) <= 0.8 && std::abs(y) <= 0.8;
        case 2:
            return y <= 0.75 && y >= -1.0 + 1.75 * std::abs(x) / 0.9 * 1.0 && std::abs(x) <= 0.9;
        case 3: {
            double a = std::atan2(y, x) + M_PI / 2;
            double k = std::fmod(a + 2 * M_PI, 2 * M_PI / 5) / (2 * M_PI / 5);  // position within one point
            double edge = 0.45 + 0.55 * std::abs(1 - 2 * k);
            return r <= edge;
        }
        case 4:
            return (std::abs(x) <= 0.3 && std::abs(y) <= 0.95) || (std::abs(y) <= 0.3 && std::abs(x) <= 0.95);
        default:
            return r <= 1.0 && r >= 0.55;
    }
}

std::string describe(const SceneObject& o, bool with_size, bool with_place) {
    std::string s = with_size ? (o.large ? "large " : "small ") : "";
    s +=
        kSyntheticColors[static_cast<size_t>(o.color)] + " " + kSyntheticShapes[static_cast<size_t>(o.shape)];
    if (with_place) s += std::string(" ") + kPlaces[o.place];
    return s;
}

std::string article(const std::string& word) {
    return (word[0] == 'a' || word[0] == 'o') ? "an " : "a ";
}

}  // namespace

Scene render_scene(uint64_t seed, uint64_t index, int64_t size, bool single_object) {
    SampleRng rng(seed, index);
    Scene sc;
    sc.image = Image{size, size, std::vector<uint8_t>(static_cast<size_t>(size * size * 3))};
    sc.mask = Image{size, size, std::vector<uint8_t>(static_cast<size_t>(size * size * 3), 0)};
    // background: two dark tones in stripes or checks, with noise
    const int pattern = static_cast<int>(rng.randint(0, 2));
    const double period = rng.uniform(4, 12) * static_cast<double>(size) / 64;
    uint8_t tone[2][3];
    for (auto& t : tone)
        for (auto& c : t) c = static_cast<uint8_t>(rng.randint(20, 110));
    for (int64_t y = 0; y < size; ++y)
        for (int64_t x = 0; x < size; ++x) {
            int which =
                pattern == 0 ? static_cast<int>(std::floor(x / period)) % 2
                : pattern == 1
                    ? static_cast<int>(std::floor((x + y) / period)) % 2
                    : (static_cast<int>(std::floor(x / period)) + static_cast<int>(std::floor(y / period))) %
                          2;
            for (int c = 0; c < 3; ++c)
                sc.image.pixel(y, x)[c] =
                    static_cast<uint8_t>(std::clamp<int64_t>(tone[which][c] + rng.randint(-8, 8), 0, 255));
        }
    const int count = single_object ? 1 : static_cast<int>(rng.randint(1, 2));
    int first_place = -1;
    for (int k = 0; k < count; ++k) {
        SceneObject o;
        o.color = static_cast<int>(rng.randint(0, static_cast<int64_t>(kSyntheticColors.size()) - 1));
        o.shape = static_cast<int>(rng.randint(0, static_cast<int64_t>(kSyntheticShapes.size()) - 1));
        o.large = rng.coin(0.5);
        do o.place = static_cast<int>(rng.randint(0, single_object ? 4 : 3));
        while (o.place == first_place);
        first_place = o.place;
        sc.objects.push_back(o);
        const double radius = (o.large ? 0.2 : 0.11) * static_cast<double>(size);
        const double cx = kPlaceXY[o.place][0] * size + rng.uniform(-0.04, 0.04) * size;
        const double cy = kPlaceXY[o.place][1] * size + rng.uniform(-0.04, 0.04) * size;
        for (int64_t y = 0; y < size; ++y)
            for (int64_t x = 0; x < size; ++x) {
                int hits = 0;  // 4x4 supersampling
                for (int sy = 0; sy < 4; ++sy)
                    for (int sx = 0; sx < 4; ++sx)
                        hits += inside_shape(o.shape, (x + (sx + 0.5) / 4 - cx) / radius,
                                             (y + (sy + 0.5) / 4 - cy) / radius);
                if (!hits) continue;
                const double a = hits / 16.0;
                uint8_t* p = sc.image.pixel(y, x);
                for (int c = 0; c < 3; ++c)
                    p[c] = static_cast<uint8_t>(std::lround(a * kRgb[o.color][c] + (1 - a) * p[c]));
                uint8_t* m = sc.mask.pixel(y, x);
                m[0] = m[1] = m[2] = std::max<uint8_t>(m[0], static_cast<uint8_t>(std::lround(255 * a)));
            }
    }
    // captions: the full description, then shorter phrasings
    auto join = [&](bool size_word, bool place) {
        std::string first = describe(sc.objects[0], size_word, place);
        std::string s = article(first) + first;
        if (sc.objects.size() > 1) {
            std::string second = describe(sc.objects[1], size_word, place);
            s += " and " + article(second) + second;
        }
        return s;
    };
    sc.captions = {join(true, true), join(false, true), join(true, false),
                   "a picture of " + join(false, false)};
    return sc;
}

int64_t synthetic_class(const SceneObject& o) {
    return o.color * static_cast<int64_t>(kSyntheticShapes.size()) + o.shape;
}

std::vector<std::string> synthetic_class_names() {
    std::vector<std::string> names;
    for (const auto& c : kSyntheticColors)
        for (const auto& s : kSyntheticShapes) names.push_back(c + " " + s);
    return names;
}

std::vector<std::string> synthetic_templates() {
    return {"a {}.", "a photo of a {}.", "a picture of a {}.", "a drawing of a {}.",
            "a {} on a striped background."};
}

}  // namespace aclip
