// grad_mode.h: the thread-local switch that decides whether ops record themselves for backward.
// NoGradGuard turns recording off for a scope (evaluation, optimizer steps, EMA updates); GradModeGuard(true)
// turns it on (a checkpointed function recomputed during backward).
#pragma once

namespace aclip {

bool grad_enabled();
void set_grad_enabled(bool on);

// Sets whether ops record for a scope, and restores the previous setting after it.
class GradModeGuard {
  public:
    explicit GradModeGuard(bool on) : previous_(grad_enabled()) { set_grad_enabled(on); }
    ~GradModeGuard() { set_grad_enabled(previous_); }
    GradModeGuard(const GradModeGuard&) = delete;
    GradModeGuard& operator=(const GradModeGuard&) = delete;

  private:
    bool previous_;
};

class NoGradGuard : public GradModeGuard {
  public:
    NoGradGuard() : GradModeGuard(false) {}
};

}  // namespace aclip
