// schedule.cpp: see schedule.h.
#include "engine/optim/schedule.h"

#include <algorithm>
#include <cmath>

namespace aclip {

double CosineSchedule::at(int64_t step) const {
    if (step < warmup_steps)
        return start_lr +
               (base_lr - start_lr) * static_cast<double>(step) / static_cast<double>(warmup_steps);
    int64_t span = std::max<int64_t>(total_steps - warmup_steps, 1);
    double progress = std::min(1.0, static_cast<double>(step - warmup_steps) / static_cast<double>(span));
    return end_lr + 0.5 * (base_lr - end_lr) * (1.0 + std::cos(M_PI * progress));
}

}  // namespace aclip
