// inference.h: a checkpoint opened for use (aclip_eval, aclip_embed, aclip_predict, aclip_mask_viz): the
// model rebuilt from the file alone, its config (the one stored in the checkpoint, or a given file, with
// command-line overrides), the tokenizer and the evaluation transform the config names.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "models/aclip.h"
#include "train/config.h"
#include "train/evaluate.h"

namespace aclip {

struct LoadedCheckpoint {
    Config cfg;
    AclipConfig acfg;
    std::unique_ptr<Aclip> model;
    std::unique_ptr<ClipTokenizer> tokenizer;  // from tokenizer.merges
    EvalSettings settings;                     // batch size, context, image transform
};

// The model file that --checkpoint names: a NAME.model.safetensors file as it is, or a folder's newest
// (a run's checkpoint.dir); a NAME.state.safetensors file is an error pointing to its model file.
std::string model_file_of(const std::string& path);

// path: as model_file_of takes it. config_path empty: the config stored in the checkpoint (an error
// naming the file when there is none).
// overrides: "section.key=value" strings, applied last; one of [model] is an error (the model is built
// as the checkpoint was). train.device = cuda puts the model on the GPU,
// unless to_device is false (a caller that must first choose its GPU, as a rank of several does).
LoadedCheckpoint load_checkpoint(const std::string& path, const std::string& config_path,
                                 const std::vector<std::string>& overrides = {}, bool to_device = true);

// The device train.device names.
Device training_device(const Config& cfg);

}  // namespace aclip
