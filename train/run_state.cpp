// run_state.cpp: see run_state.h.
#include "train/run_state.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "engine/autograd/grad_mode.h"
#include "engine/io/safetensors.h"
#include "models/checkpoint.h"

namespace aclip {

namespace {

constexpr const char* kModelSuffix = ".model.safetensors";
constexpr const char* kStateSuffix = ".state.safetensors";

std::string stem_of(const std::string& model_path) {
    return model_path.substr(0, model_path.size() - std::string(kModelSuffix).size());
}

}  // namespace

std::string state_file_of(const std::string& model_path) {
    return stem_of(model_path) + kStateSuffix;
}

std::vector<std::string> list_checkpoints(const std::string& dir) {
    std::vector<std::string> out;
    if (!std::filesystem::exists(dir)) return out;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        std::string name = e.path().filename().string();
        if (name.starts_with("step_") && name.ends_with(kModelSuffix)) out.push_back(e.path().string());
    }
    std::sort(out.begin(), out.end());  // step numbers are zero-padded: oldest first
    return out;
}

std::vector<std::string> adamw_parameter_names(Aclip& model, const std::vector<ParamGroup>& groups) {
    std::vector<std::string> names;
    const auto named = model.named_parameters();
    for (const ParamGroup& g : groups)
        for (const Tensor& p : g.params)
            for (const auto& np : named)
                if (np.tensor->same(p)) names.push_back(np.name);
    return names;
}

void save_run_checkpoint(const std::string& dir, int64_t step, int64_t total_steps, Aclip& model, AdamW& opt,
                         const std::vector<std::string>& parameter_names,
                         const std::vector<LoaderCursor>& cursors, const Config& cfg, const AclipConfig& acfg,
                         int64_t keep) {
    char name[64];
    std::snprintf(name, sizeof name, "/step_%08lld", static_cast<long long>(step));
    const std::string stem = dir + name;
    save_model(stem + kModelSuffix, model, model_metadata(acfg, cfg.text()));
    std::vector<std::pair<std::string, Tensor>> state;
    for (size_t i = 0; i < parameter_names.size(); ++i) {
        state.emplace_back("adamw.exp_avg." + parameter_names[i], opt.exp_avg()[i]);
        state.emplace_back("adamw.exp_avg_sq." + parameter_names[i], opt.exp_avg_sq()[i]);
    }
    std::map<std::string, std::string> metadata = {{"step", std::to_string(step)},
                                                   {"optimizer.steps", std::to_string(opt.steps())},
                                                   {"train.steps", std::to_string(total_steps)},
                                                   {"dist.world", std::to_string(cursors.size())},
                                                   {"aclip.config", cfg.text()}};
    for (size_t r = 0; r < cursors.size(); ++r) {
        metadata["loader.rank" + std::to_string(r) + ".epoch"] = std::to_string(cursors[r].epoch);
        metadata["loader.rank" + std::to_string(r) + ".position"] = std::to_string(cursors[r].position);
    }
    save_safetensors(stem + kStateSuffix, state, metadata);
    std::vector<std::string> all = list_checkpoints(dir);
    for (size_t i = 0; i + static_cast<size_t>(keep) < all.size(); ++i) {  // keep the newest `keep`
        std::filesystem::remove(all[i]);
        std::filesystem::remove(state_file_of(all[i]));
    }
}

ResumePoint load_run_checkpoint(const std::string& which, const std::string& dir, const Config& cfg,
                                int64_t total_steps, bool force_schedule, int rank, int world, Aclip& model,
                                AdamW& opt, const std::vector<std::string>& parameter_names) {
    ResumePoint at;
    at.path = which;
    if (which == "latest") {
        std::vector<std::string> all = list_checkpoints(dir);
        AC_CHECK_HINT(!all.empty(), "start without --resume", "--resume latest: no checkpoint in ", dir);
        at.path = all.back();
    }
    AC_CHECK_HINT(at.path.ends_with(kModelSuffix), "pass 'latest' or a step_N.model.safetensors file",
                  "--resume ", at.path, ": not a checkpoint's model file");
    const SafetensorsFile weights = load_safetensors(at.path);
    const SafetensorsFile state = load_safetensors(state_file_of(at.path));
    const std::string& written_for = state.meta("train.steps");
    AC_CHECK_HINT(force_schedule || written_for == std::to_string(total_steps),
                  "the learning-rate and EMA schedules depend on train.steps; keep it, start a new run, "
                  "or pass --force-schedule",
                  "resume: the checkpoint was written for a run of ", written_for, " steps but this one has ",
                  total_steps, " (train.steps = ", cfg.str("train.steps"), ")");
    AC_CHECK_HINT(state.meta("dist.world") == std::to_string(world),
                  "resume with the number of ranks the run had", "resume: the checkpoint was written by ",
                  state.meta("dist.world"), " ranks, this run has ", world);
    at.step = state.meta_integer("step");
    const int64_t optimizer_steps = state.meta_integer("optimizer.steps");
    const std::string r = "loader.rank" + std::to_string(rank);
    at.cursor = {state.meta_integer(r + ".epoch"), state.meta_integer(r + ".position")};
    load_state(model, weights);  // nothing is changed before every check has passed
    NoGradGuard no_grad;
    for (size_t i = 0; i < parameter_names.size(); ++i) {
        opt.exp_avg()[i].copy_(state.get("adamw.exp_avg." + parameter_names[i]));
        opt.exp_avg_sq()[i].copy_(state.get("adamw.exp_avg_sq." + parameter_names[i]));
    }
    opt.set_steps(optimizer_steps);
    return at;
}

}  // namespace aclip
