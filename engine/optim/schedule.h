// schedule.h: the learning-rate schedule of SLIP / A-CLIP, evaluated per step: linear warmup from
// start_lr to base_lr over warmup_steps, then a cosine from base_lr down to end_lr at total_steps.
#pragma once
#include <cstdint>

namespace aclip {

struct CosineSchedule {
    double base_lr = 5e-4, start_lr = 1e-6, end_lr = 1e-5;
    int64_t warmup_steps = 0, total_steps = 1;
    double at(int64_t step) const;
};

}  // namespace aclip
