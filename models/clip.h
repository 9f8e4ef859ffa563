// clip.h: CLIP: the image tower (visual.*), the text tower (at the root, as OpenAI names it) and the
// learned temperature logit_scale (log of the scale; init ln(1/0.07), clamped to [0, ln 100] after
// each optimizer step).
#pragma once
#include <cmath>

#include "models/text_transformer.h"
#include "models/vit.h"

namespace aclip {

struct ClipConfig {
    VisionConfig vision;
    TextConfig text;
    double init_logit_scale = std::log(1.0 / 0.07);
};

class Clip : public Module {
  public:
    Clip(const ClipConfig& cfg, Generator& gen);
    void visit(Visitor& v) override;
    void clamp_logit_scale();  // to [0, ln 100], in place, no gradient

    ClipConfig cfg;
    VisionTransformer visual;
    TextTransformer text;
    Tensor logit_scale;  // []
};

}  // namespace aclip
