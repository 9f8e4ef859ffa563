// presets.h: the model sizes by name. A-CLIP's ViT-S/16, ViT-B/16 and ViT-L/16 (timm-style towers: patch
// bias, no ln_pre, exact GELU, eps 1e-6, frozen patch embedding) with the 12-layer, 512-wide text tower;
// OpenAI CLIP's ViT-B/16 (ln_pre, QuickGELU, eps 1e-5, no patch bias) so converted OpenAI weights load;
// and "tiny", small enough for CPU tests.
#pragma once
#include <string>
#include <vector>

#include "models/aclip.h"

namespace aclip {

// Names: tiny, vit_s16, vit_b16, vit_l16, openai_vit_b16. The error lists them.
AclipConfig model_preset(const std::string& name);
std::vector<std::string> model_preset_names();

}  // namespace aclip
