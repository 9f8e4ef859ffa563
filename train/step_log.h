// step_log.h: what a training run reports. Every log_every steps a line on stdout and the same fields as a
// JSON line in checkpoint.dir/metrics.jsonl; each evaluation likewise. The loss terms are read from the
// device once per micro-step (LossValues), for the non-finite check and the log alike.
#pragma once
#include <fstream>
#include <memory>
#include <optional>
#include <string>

#include "engine/core/host_copy.h"
#include "models/aclip.h"
#include "train/evaluate.h"

namespace aclip {

struct LossValues {
    double loss = 0, clip1 = 0;
    std::optional<double> clip2, simclr, byol;  // absent where the configuration has no such loss
};

// The loss terms of a step on their way to the host: one copy of all of them, queued behind the forward
// pass when constructed, so that the host can queue the backward pass before it waits for them (the GPU
// then never idles while the host checks them).
class LossReadback {
  public:
    explicit LossReadback(const AclipStep& step);
    LossValues wait();

  private:
    std::unique_ptr<HostCopy> copy_;
    bool has_clip2_, has_simclr_, has_byol_;
};

// "simclr loss is nan" for the first term (loss, clip1, clip2, simclr, byol) that is not finite; "" if all
// are.
std::string first_nonfinite(const LossValues& v);

struct StepLog {
    int64_t step = 0, total_steps = 0, epoch = 0;
    double lr = 0;
    double loss = 0;  // mean over the step's micro-batches
    LossValues last;  // the terms of its last micro-batch
    double logit_scale = 0, ema_momentum = 0;
    double samples_per_s = 0;  // of all ranks together
    int ranks = 1;
    double data_wait = 0;  // share of the time spent waiting for the loader
    double ms_per_step = 0;
    double peak_mib = 0;  // peak memory of the training device
    double eta_s = 0;
};
void report_step(const StepLog& s, std::ofstream& metrics);

// "eval step 600 online | zero-shot top-1 ... | retrieval R@1 ..."; nothing when r has no figures.
void report_eval(int64_t step, const std::string& label, const EvalResult& r, std::ofstream& metrics);

// The run's metrics file, opened for appending from `step`: rows of later steps, left by the interrupted
// part of this run, are dropped first (rewritten atomically), so the file always describes the run whose
// checkpoints sit beside it. A fresh run (step 0) moves an earlier run's file to NAME.previous.jsonl (one
// whose checkpoints were deleted, or that failed before its first), replacing an older one there.
std::ofstream open_metrics(const std::string& path, int64_t step);

}  // namespace aclip
