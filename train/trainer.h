// trainer.h: the A-CLIP training run behind aclip_train: builds the model, the tokenizer and the loader
// from a Config, then steps (EMA update, teacher, masks, online towers, losses, backward, AdamW with the
// warmup + cosine schedule, logit-scale clamp), logs, evaluates and writes checkpoints. A run resumed
// from a checkpoint continues bitwise-identically on the CPU: the checkpoint holds the weights, the EMA
// copies, the BatchNorm statistics, AdamW's moments and step, and the loader's cursor, and every random
// draw is a function of the seed and the step.
#pragma once
#include <string>

#include "data/loader.h"
#include "engine/dist/comm.h"
#include "models/aclip.h"
#include "train/config.h"
#include "train/evaluate.h"
#include "train/run_state.h"

namespace aclip {

// The model configuration a Config describes (preset plus overrides; vocab from the tokenizer).
AclipConfig aclip_config_from(const Config& cfg, int64_t vocab);

struct TrainResult {
    int64_t first_step = 0;  // where this run began: the step of the checkpoint it resumed from
    int64_t step = 0;        // optimizer steps done
    double loss = 0;         // the last step's loss
    EvalResult online, ema;
    bool interrupted = false;  // stopped by SIGINT or SIGTERM (after writing a checkpoint)
};

// resume: "" (a fresh run), "latest" (the newest checkpoint in checkpoint.dir), or the path of a
// NAME.model.safetensors file.
// force_schedule: accept a checkpoint written for another train.steps.
TrainResult train(const Config& cfg, const std::string& resume = "", bool force_schedule = false);

// The evaluation settings a Config describes, for a model of this configuration.
EvalSettings eval_settings_from(const Config& cfg, const AclipConfig& acfg);

// The loader settings a Config describes for this rank (pinned batches when training on a GPU).
LoaderConfig loader_config_from(const Config& cfg, const AclipConfig& acfg, const Comm& comm, Device device);

}  // namespace aclip
