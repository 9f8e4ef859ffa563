// clip.cpp: see clip.h.
#include "models/clip.h"

#include "engine/autograd/grad_mode.h"

namespace aclip {

Clip::Clip(const ClipConfig& c, Generator& gen) : cfg(c), visual(c.vision, gen), text(c.text, gen) {
    AC_CHECK(c.vision.embed_dim == c.text.embed_dim, "ClipConfig: vision embed_dim ", c.vision.embed_dim,
             " differs from text embed_dim ", c.text.embed_dim);
    logit_scale = full({}, c.init_logit_scale).requires_grad_();
}

void Clip::visit(Visitor& v) {
    v.child("visual", visual);
    text.visit(v);  // the text tower's names sit at the root: token_embedding.weight, transformer...
    v.param("logit_scale", logit_scale);
}

void Clip::clamp_logit_scale() {
    NoGradGuard no_grad;
    logit_scale.copy_(clamp(logit_scale, 0.0, std::log(100.0)));
}

}  // namespace aclip
