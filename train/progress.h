// progress.h: the terminal progress bar of long work (training steps, embedding files): a bar, the
// count and an ETA, redrawn in place on stderr (or `out`) when it is a terminal, and silent otherwise (logs
// and pipes get no control characters).
#pragma once
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

namespace aclip {

class ProgressBar {
  public:
    // Counts from `first` to `total` (a resumed run starts past 0).
    ProgressBar(int64_t total, int64_t first = 0, std::FILE* out = stderr)
        : total_(total),
          first_(first),
          out_(out),
          active_(isatty(fileno(out)) != 0),
          start_(std::chrono::steady_clock::now()) {}
    ~ProgressBar() { clear(); }
    bool active() const { return active_; }

    void update(int64_t done) const {
        if (!active_) return;
        const double frac =
            static_cast<double>(done - first_) / static_cast<double>(std::max<int64_t>(total_ - first_, 1));
        const double elapsed =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
        const int width = 30, filled = std::clamp(static_cast<int>(frac * width), 0, width);
        std::fprintf(out_, "\r[%s%s] %lld/%lld  eta %.0fs ", std::string(filled, '#').c_str(),
                     std::string(width - filled, '.').c_str(), static_cast<long long>(done),
                     static_cast<long long>(total_), elapsed / std::max(frac, 1e-9) * (1 - frac));
        std::fflush(out_);
    }
    void clear() const {  // erases the bar before a line of ordinary output
        if (!active_) return;
        std::fprintf(out_, "\r\033[K");
        std::fflush(out_);
    }

  private:
    int64_t total_, first_;
    std::FILE* out_;
    bool active_;
    std::chrono::steady_clock::time_point start_;
};

// A bar for work that learns its total as it goes (an evaluation's share of images): the first update
// draws it; reset() erases it.
class OnDemandProgressBar {
  public:
    explicit OnDemandProgressBar(std::FILE* out = stderr) : out_(out) {}
    void update(int64_t done, int64_t total) {
        if (!bar_) bar_ = std::make_unique<ProgressBar>(total, 0, out_);
        bar_->update(done);
    }
    void reset() { bar_.reset(); }

  private:
    std::FILE* out_;
    std::unique_ptr<ProgressBar> bar_;
};

}  // namespace aclip
