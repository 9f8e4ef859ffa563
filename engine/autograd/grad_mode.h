// grad_mode.h: the thread-local switch that decides whether ops record themselves for backward.
// NoGradGuard turns recording off for a scope (evaluation, optimizer steps, EMA updates); EnableGradGuard
// turns it on (a checkpointed function recomputed during backward).
#pragma once

namespace aclip {

bool grad_enabled();
void set_grad_enabled(bool on);

class NoGradGuard {
  public:
    NoGradGuard() : previous_(grad_enabled()) { set_grad_enabled(false); }
    ~NoGradGuard() { set_grad_enabled(previous_); }
    NoGradGuard(const NoGradGuard&) = delete;
    NoGradGuard& operator=(const NoGradGuard&) = delete;

  private:
    bool previous_;
};

class EnableGradGuard {
  public:
    EnableGradGuard() : previous_(grad_enabled()) { set_grad_enabled(true); }
    ~EnableGradGuard() { set_grad_enabled(previous_); }
    EnableGradGuard(const EnableGradGuard&) = delete;
    EnableGradGuard& operator=(const EnableGradGuard&) = delete;

  private:
    bool previous_;
};

}  // namespace aclip
