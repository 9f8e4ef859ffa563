// presets.cpp: see presets.h. Sizes from aclip-method.md 1.1-1.3.
#include "models/presets.h"

namespace aclip {

namespace {

AclipConfig aclip_vit(int64_t width, int64_t layers, int64_t heads) {
    AclipConfig c;
    c.clip.vision =
        VisionConfig{224, 16, width, layers, heads, 4, 512, Activation::GELU, 1e-6, false, true, true};
    c.clip.text = TextConfig{77, 49408, 512, 12, 8, 4, 512, Activation::QuickGELU, 1e-5};
    c.ssl = SslConfig{4096, 256, 4096, 256};
    return c;
}

}  // namespace

std::vector<std::string> model_preset_names() {
    return {"tiny", "vit_s16", "vit_b16", "vit_l16", "openai_vit_b16"};
}

AclipConfig model_preset(const std::string& name) {
    if (name == "vit_s16") return aclip_vit(384, 12, 12);
    if (name == "vit_b16") return aclip_vit(768, 12, 12);
    if (name == "vit_l16") return aclip_vit(1024, 24, 16);
    if (name == "openai_vit_b16") {
        AclipConfig c = aclip_vit(768, 12, 12);
        c.clip.vision.act = Activation::QuickGELU;
        c.clip.vision.ln_eps = 1e-5;
        c.clip.vision.ln_pre = true;
        c.clip.vision.patch_bias = false;
        return c;
    }
    if (name == "tiny") {
        AclipConfig c;
        c.clip.vision = VisionConfig{32, 4, 32, 2, 2, 4, 24, Activation::GELU, 1e-6, false, true, true};
        c.clip.text = TextConfig{16, 100, 32, 2, 2, 4, 24, Activation::QuickGELU, 1e-5};
        c.ssl = SslConfig{40, 16, 36, 12};
        return c;
    }
    std::string names;
    for (const auto& n : model_preset_names()) names += (names.empty() ? "" : ", ") + n;
    AC_FAIL("unknown model '", name, "'; accepted: ", names);
}

}  // namespace aclip
