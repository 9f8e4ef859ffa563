// inference.cpp: see inference.h.
#include "train/inference.h"

#include <cstdio>
#include <filesystem>

#include "models/checkpoint.h"
#include "train/run_state.h"
#include "train/trainer.h"

namespace aclip {

Device training_device(const Config& cfg) {
    return cfg.str("train.device") == "cuda" ? Device::CUDA : Device::CPU;
}

std::string model_file_of(const std::string& path) {
    if (std::filesystem::is_directory(path)) {
        const std::vector<std::string> all = list_checkpoints(path);
        AC_CHECK_HINT(!all.empty(), "pass a NAME.model.safetensors file, or a checkpoint.dir that holds one",
                      "--checkpoint ", path, ": a folder without checkpoints");
        std::fprintf(stderr, "checkpoint: %s (the newest in %s)\n", all.back().c_str(), path.c_str());
        return all.back();
    }
    const std::string model = model_file_of_state(path);
    AC_CHECK_HINT(model.empty(), "pass its model file, " + model, "--checkpoint ", path,
                  ": a state file (the optimizer's moments and the data cursor), not the model");
    return path;
}

LoadedCheckpoint load_checkpoint(const std::string& path, const std::string& config_path,
                                 const std::vector<std::string>& overrides, bool to_device) {
    AC_CHECK_HINT(!path.empty(), "pass --checkpoint NAME.model.safetensors", "no checkpoint given");
    SafetensorsFile file = load_safetensors(model_file_of(path));
    LoadedCheckpoint c;
    if (!config_path.empty()) {
        c.cfg.load_file(config_path);
    } else {
        auto it = file.metadata.find("aclip.config");
        AC_CHECK_HINT(it != file.metadata.end() && !it->second.empty(), "pass --config", path,
                      ": no config stored in the checkpoint");
        c.cfg.load_text(it->second, path + " (stored config)");
    }
    for (const std::string& o : overrides) {
        // the model's shape is the checkpoint's own (its tensors): such an override would go unheeded
        AC_CHECK_HINT(!o.starts_with("model."), "drop it: the checkpoint's tensors give the model's shape",
                      "override '", o, "': the model is built as the checkpoint was, not from [model]");
        c.cfg.set_override(o);
    }
    c.acfg = config_from_checkpoint(file);
    Generator gen(0);
    c.model = std::make_unique<Aclip>(c.acfg, gen);
    load_state(*c.model, file);
    c.model->eval();
    if (to_device && training_device(c.cfg) == Device::CUDA) c.model->to(Device::CUDA);
    c.tokenizer =
        std::make_unique<ClipTokenizer>(c.cfg.str("tokenizer.merges"), c.acfg.clip.text.vocab - 514);
    c.settings = eval_settings_from(c.cfg, c.acfg);
    return c;
}

}  // namespace aclip
