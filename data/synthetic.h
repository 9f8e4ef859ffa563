// synthetic.h: the embedded default dataset: procedurally rendered scenes with captions that describe
// them ("a large red circle at the top left and a small blue star"), deterministic by seed. Each scene
// also carries its object mask, so the precision of the attentive mask can be measured. Small enough
// to render in seconds, rich enough that a tiny CLIP learns colour, shape, size and position from it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/image.h"

namespace aclip {

extern const std::vector<std::string>
    kSyntheticColors;  // red, green, blue, yellow, purple, orange, white, cyan
extern const std::vector<std::string> kSyntheticShapes;  // circle, square, triangle, star, cross, ring

struct SceneObject {
    int color = 0, shape = 0;
    bool large = false;
    int place = 0;  // 0..4: top left, top right, bottom left, bottom right, center
};

struct Scene {
    Image image;
    Image mask;  // white where an object is, black elsewhere
    std::vector<SceneObject> objects;
    std::vector<std::string> captions;  // several phrasings; the first is the canonical one
};

// Scene `index` of the stream `seed`: 1 or 2 objects (exactly 1 when single_object) on a textured
// background, size x size pixels.
Scene render_scene(uint64_t seed, uint64_t index, int64_t size, bool single_object = false);

// The zero-shot class of a single-object scene: color * shapes + shape; names "red circle", ...
int64_t synthetic_class(const SceneObject& o);
std::vector<std::string> synthetic_class_names();
std::vector<std::string> synthetic_templates();  // "a photo of a {}.", ...

}  // namespace aclip
