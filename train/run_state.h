// run_state.h: the checkpoints a training run keeps in checkpoint.dir, from which it resumes. Each is two
// files: step_N.model.safetensors (every weight, the EMA copies and the BatchNorm statistics, loadable
// without the config: models/checkpoint.h) and step_N.state.safetensors (AdamW's moments by parameter
// name and its step count, the run's step and train.steps, and every rank's data cursor). Both are written
// atomically, the state first (a model file is there only beside its state), and the newest
// checkpoint.keep are kept.
#pragma once
#include <string>
#include <vector>

#include "data/loader.h"
#include "engine/optim/adamw.h"
#include "models/aclip.h"
#include "train/config.h"

namespace aclip {

// The whole checkpoints in dir (both files), oldest first: paths of their .model.safetensors files.
// incomplete, when given, receives the files of a step whose other file is missing (a run stopped while
// writing it; oldest first).
std::vector<std::string> list_checkpoints(const std::string& dir,
                                          std::vector<std::string>* incomplete = nullptr);
// The state file of a checkpoint, beside its NAME.model.safetensors: NAME.state.safetensors.
std::string state_file_of(const std::string& model_path);
// The model file beside NAME.state.safetensors; "" when path is not a state file.
std::string model_file_of_state(const std::string& path);

// The dotted names of the parameters AdamW updates, in its order (the state file's keys).
std::vector<std::string> adamw_parameter_names(Aclip& model, const std::vector<ParamGroup>& groups);

// Writes the checkpoint of `step` of a run of total_steps into dir (cursors: every rank's, in rank order),
// then deletes all but the newest `keep`.
void save_run_checkpoint(const std::string& dir, int64_t step, int64_t total_steps, Aclip& model, AdamW& opt,
                         const std::vector<std::string>& parameter_names,
                         const std::vector<LoaderCursor>& cursors, const Config& cfg, const AclipConfig& acfg,
                         int64_t keep);

// That a run (resume: "" fresh, "latest", or a checkpoint's path) writes its checkpoints only beside its
// own past: a fresh run into a folder without checkpoints, a resumed one into a folder without any past
// the step it resumes from. Otherwise two runs mix, since pruning and --resume latest go by step number
// (a crash would resume the other run). An error naming the folder and the checkpoints in the way.
void check_checkpoint_dir(const std::string& dir, const std::string& resume);

struct ResumePoint {
    std::string path;     // the .model.safetensors file read
    int64_t step = 0;     // optimizer steps done
    LoaderCursor cursor;  // this rank's place in its data stream
    std::string config;   // the resolved config of the run that wrote it (INI text)
};

// Loads checkpoint `which` ("latest": the newest in dir; or a .model.safetensors path) into model and opt.
// Refuses a checkpoint written for a run of another length than total_steps (the schedules depend on it)
// unless force_schedule, and one written by another number of ranks.
ResumePoint load_run_checkpoint(const std::string& which, const std::string& dir, const Config& cfg,
                                int64_t total_steps, bool force_schedule, int rank, int world, Aclip& model,
                                AdamW& opt, const std::vector<std::string>& parameter_names);

}  // namespace aclip
