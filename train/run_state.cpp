// run_state.cpp: see run_state.h.
#include "train/run_state.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "engine/autograd/grad_mode.h"
#include "engine/io/safetensors.h"
#include "models/checkpoint.h"

namespace aclip {

namespace {

constexpr const char* kModelSuffix = ".model.safetensors";
constexpr const char* kStateSuffix = ".state.safetensors";

// path with its ending `from` replaced by `to`; "" when it does not end so.
std::string swap_suffix(const std::string& path, const std::string& from, const std::string& to) {
    return path.ends_with(from) ? path.substr(0, path.size() - from.size()) + to : "";
}

}  // namespace

std::string state_file_of(const std::string& model_path) {
    return swap_suffix(model_path, kModelSuffix, kStateSuffix);
}

std::string model_file_of_state(const std::string& path) {
    return swap_suffix(path, kStateSuffix, kModelSuffix);
}

std::vector<std::string> list_checkpoints(const std::string& dir, std::vector<std::string>* incomplete) {
    std::vector<std::string> out;
    if (!std::filesystem::exists(dir)) return out;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        const std::string path = e.path().string(), name = e.path().filename().string();
        if (!name.starts_with("step_")) continue;
        if (name.ends_with(kModelSuffix)) {
            if (std::filesystem::exists(state_file_of(path)))
                out.push_back(path);
            else if (incomplete)
                incomplete->push_back(path);  // a run stopped between the two files (written model first)
        } else if (incomplete && name.ends_with(kStateSuffix) &&
                   !std::filesystem::exists(model_file_of_state(path))) {
            incomplete->push_back(path);  // a run stopped between the two files (state first)
        }
    }
    std::sort(out.begin(), out.end());  // step numbers are zero-padded: oldest first
    if (incomplete) std::sort(incomplete->begin(), incomplete->end());
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
    char name_of_step[64];
    std::snprintf(name_of_step, sizeof name_of_step, "step_%08lld", static_cast<long long>(step));
    const std::string stem = dir + "/" + name_of_step;
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
    // The state first: a model file is there only beside its state, so a run stopped between the two
    // leaves an incomplete checkpoint that list_checkpoints passes over.
    save_safetensors(stem + kStateSuffix, state, metadata);
    save_model(stem + kModelSuffix, model, model_metadata(acfg, cfg.text()));
    // The newest `keep` stay. Gone too: what a stopped run left of a step this run has passed, an
    // incomplete checkpoint or the temporary file of one being written (NAME.tmp.PID of another process).
    std::vector<std::string> incomplete;
    const std::vector<std::string> all = list_checkpoints(dir, &incomplete);
    for (size_t i = 0; i + static_cast<size_t>(keep) < all.size(); ++i) {
        std::filesystem::remove(all[i]);  // the model first: a checkpoint is either whole or incomplete
        std::filesystem::remove(state_file_of(all[i]));
    }
    const std::string this_process = ".tmp." + std::to_string(getpid());
    auto left_by_a_stopped_run = [&](const std::string& path, const std::string& name) {
        if (!name.starts_with("step_") || name.substr(0, std::strlen(name_of_step)) > name_of_step)
            return false;
        const bool temporary =
            name.find(".safetensors.tmp.") != std::string::npos && !name.ends_with(this_process);
        return temporary || std::find(incomplete.begin(), incomplete.end(), path) != incomplete.end();
    };
    std::vector<std::filesystem::path> stale;  // removed after the listing, not during it
    for (const auto& e : std::filesystem::directory_iterator(dir))
        if (left_by_a_stopped_run(e.path().string(), e.path().filename().string())) stale.push_back(e.path());
    for (const auto& path : stale) std::filesystem::remove(path);
}

void check_checkpoint_dir(const std::string& dir, const std::string& resume) {
    const std::vector<std::string> all = list_checkpoints(dir);
    auto name = [](const std::string& path) { return std::filesystem::path(path).filename().string(); };
    AC_CHECK_HINT(!resume.empty() || all.empty(),
                  "continue it with --resume latest, set another checkpoint.dir, or delete its checkpoints",
                  "checkpoint.dir ", dir, " holds the checkpoints of an earlier run (the newest: ",
                  all.empty() ? "" : name(all.back()), ")");
    const std::string resumed = name(resume);
    if (resume.empty() || resume == "latest" || !resumed.starts_with("step_")) return;
    std::string later;  // step numbers are zero-padded: names order as steps
    for (const std::string& c : all)
        if (name(c) > resumed) later += (later.empty() ? "" : ", ") + name(c);
    AC_CHECK_HINT(later.empty(), "move those elsewhere, or set another checkpoint.dir for the resumed run",
                  "checkpoint.dir ", dir, " holds checkpoints past the one resumed (", resumed, "): ", later,
                  "; the resumed run's own would mix with them (--resume latest would take theirs)");
}

ResumePoint load_run_checkpoint(const std::string& which, const std::string& dir, const Config& cfg,
                                int64_t total_steps, bool force_schedule, int rank, int world, Aclip& model,
                                AdamW& opt, const std::vector<std::string>& parameter_names) {
    ResumePoint at;
    at.path = which;
    if (which == "latest") {
        std::vector<std::string> incomplete;
        std::vector<std::string> all = list_checkpoints(dir, &incomplete);
        AC_CHECK_HINT(!all.empty(), "start without --resume", "--resume latest: no checkpoint in ", dir,
                      incomplete.empty() ? "" : " (only the incomplete " + incomplete.back() + ")");
        at.path = all.back();
        if (rank == 0 && !incomplete.empty() && incomplete.back() > at.path)
            std::printf("resume: %s has no other half (the run stopped while writing it); resuming from %s\n",
                        incomplete.back().c_str(), at.path.c_str());
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
    at.config = state.meta("aclip.config");
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
