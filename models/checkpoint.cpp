// checkpoint.cpp: see checkpoint.h.
#include "models/checkpoint.h"

#include <cmath>
#include <set>
#include <sstream>

#include "engine/autograd/grad_mode.h"

namespace aclip {

namespace {

const char* act_name(Activation a) {
    switch (a) {
        case Activation::GELU:
            return "gelu";
        case Activation::QuickGELU:
            return "quick_gelu";
        case Activation::ReLU:
            return "relu";
    }
    return "?";
}

std::string number(double v) {
    std::ostringstream os;
    os.precision(17);
    os << v;
    return os.str();
}

int64_t count_blocks(const SafetensorsFile& f, const std::string& prefix) {
    int64_t n = 0;
    while (f.has(prefix + std::to_string(n) + ".ln_1.weight")) ++n;
    return n;
}

}  // namespace

std::map<std::string, std::string> model_metadata(const AclipConfig& c, const std::string& ini_text) {
    const VisionConfig& v = c.clip.vision;
    const TextConfig& t = c.clip.text;
    return {{"vision.heads", std::to_string(v.heads)},
            {"text.heads", std::to_string(t.heads)},
            {"vision.act", act_name(v.act)},
            {"text.act", act_name(t.act)},
            {"vision.ln_eps", number(v.ln_eps)},
            {"text.ln_eps", number(t.ln_eps)},
            {"vision.ln_pre", v.ln_pre ? "true" : "false"},
            {"image.mean", "0.485,0.456,0.406"},  // ImageNet statistics, as A-CLIP (data config, later)
            {"image.std", "0.229,0.224,0.225"},
            {"image.resize", "bilinear"},
            {"tokenizer.truncate", "eot"},
            {"aclip.config", ini_text}};
}

void save_model(const std::string& path, Module& model, const std::map<std::string, std::string>& metadata) {
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (auto& t : model.named_state()) tensors.emplace_back(t.name, *t.tensor);
    save_safetensors(path, tensors, metadata);
}

AclipConfig config_from_checkpoint(const SafetensorsFile& f) {
    AclipConfig c;
    VisionConfig& v = c.clip.vision;
    const Tensor& conv = f.get("visual.conv1.weight");  // (W, 3, P, P)
    v.width = conv.size(0);
    v.patch_size = conv.size(2);
    const int64_t tokens = f.get("visual.positional_embedding").size(0);
    const auto grid = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(tokens - 1))));
    AC_CHECK(grid * grid == tokens - 1, f.path, ": visual.positional_embedding has ", tokens,
             " rows, not 1 + a square grid");
    v.image_size = grid * v.patch_size;
    v.layers = count_blocks(f, "visual.transformer.resblocks.");
    v.heads = f.meta_integer("vision.heads");
    v.mlp_ratio = f.get("visual.transformer.resblocks.0.mlp.c_fc.weight").size(0) / v.width;
    v.embed_dim = f.get("visual.proj").size(1);
    v.act = activation_from_name(f.meta("vision.act"));
    v.ln_eps = f.meta_number("vision.ln_eps");
    v.ln_pre = f.has("visual.ln_pre.weight");
    AC_CHECK(v.ln_pre == (f.meta("vision.ln_pre") == "true"), f.path,
             ": vision.ln_pre metadata disagrees with the tensors");
    v.patch_bias = f.has("visual.conv1.bias");

    TextConfig& t = c.clip.text;
    t.context = f.get("positional_embedding").size(0);
    t.vocab = f.get("token_embedding.weight").size(0);
    t.width = f.get("token_embedding.weight").size(1);
    t.layers = count_blocks(f, "transformer.resblocks.");
    t.heads = f.meta_integer("text.heads");
    t.mlp_ratio = f.get("transformer.resblocks.0.mlp.c_fc.weight").size(0) / t.width;
    t.embed_dim = f.get("text_projection").size(1);
    t.act = activation_from_name(f.meta("text.act"));
    t.ln_eps = f.meta_number("text.ln_eps");

    if (f.has("ssl.simclr_mlp.fc1.weight")) {
        c.ssl.simclr_hidden = f.get("ssl.simclr_mlp.fc1.weight").size(0);
        c.ssl.simclr_dim = f.get("ssl.simclr_mlp.fc3.weight").size(0);
        c.ssl.byol_hidden = f.get("ssl.byol_projector.fc1.weight").size(0);
        c.ssl.byol_dim = f.get("ssl.byol_projector.fc2.weight").size(0);
    } else {
        c.ssl_losses = false;
    }
    if (!f.has("ema.visual.class_embedding")) {
        c.ssl_losses = false;
        c.mask = MaskMode::None;
    }
    return c;
}

void load_state(Module& model, const SafetensorsFile& f) {
    std::set<std::string> wanted;
    NoGradGuard no_grad;
    for (auto& t : model.named_state()) {
        wanted.insert(t.name);
        AC_CHECK_HINT(f.has(t.name), "was it written for another model size or mode?", f.path,
                      ": no tensor '", t.name, "' for the model");
        const Tensor& src = f.get(t.name);
        AC_CHECK(src.shape() == t.tensor->shape() && src.dtype() == t.tensor->dtype(), f.path, ": '", t.name,
                 "' is ", src.desc(), " but the model has ", t.tensor->desc());
        t.tensor->copy_(src);
    }
    for (const auto& [name, t] : f.tensors)
        AC_CHECK_HINT(wanted.count(name), "was it written for another model size or mode?", f.path,
                      ": unexpected tensor '", name, "' (the model has no such parameter or buffer)");
}

}  // namespace aclip
