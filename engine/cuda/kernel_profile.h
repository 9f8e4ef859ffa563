// kernel_profile.h: where a GPU step's time goes, kernel by kernel. While a profile is on
// (cuda::profile_start), every kernel launch (AC_CUDA_LAUNCH_CHECK), matrix product and copy records a CUDA
// event behind it in the stream, tagged with its kernel's name, and the host's clock once it is queued;
// cuda::profile_stop waits for the last one and charges each launch with the time from the event before
// it to its own, less the time the GPU sat idle because the host had not queued it yet (from the end of
// the launch before to the host's clock after queuing it). That idle time has its own rows, one for each
// kernel the GPU waited for, so a host-bound stretch shows there, not in that kernel's time; it includes the
// launch call's own few microseconds, and the clocks, aligned at the profile's start while the GPU has
// nothing queued, agree to a few microseconds. Recording an event costs the host a microsecond or two and
// does not stop the GPU from running ahead, unlike timing each kernel with a synchronisation. The summary of
// a timeline is plain C++, tested on the CPU.
#pragma once
#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace aclip::cuda {

struct ProfileRow {
    std::string name;
    int64_t calls = 0;
    double ms = 0.0;
};

// The idle time is charged to rows named kHostWaitRow + the name of the launch the GPU waited for: what
// the host was preparing (its op's host work, or a synchronisation before it).
inline constexpr const char* kHostWaitRow = "(GPU idle, waiting for the host) before ";

// Launch i, named names[i], ended end_ms[i] milliseconds after the profile started (times nondecreasing),
// on the GPU's clock; host_ms[i], when given, is when the host had queued it, on the host's clock from the
// same start. Each name's launches and their time, the largest total first (ties by name); with host
// times, the idle time before each launch is left out of its kernel's and summed in a row kHostWaitRow +
// its name.
inline std::vector<ProfileRow> summarize_timeline(const std::vector<std::string>& names,
                                                  const std::vector<double>& end_ms,
                                                  const std::vector<double>& host_ms = {}) {
    std::map<std::string, ProfileRow> by_name;
    double previous = 0.0;  // the end of the launch before
    for (size_t i = 0; i < names.size() && i < end_ms.size(); ++i) {
        const double span = std::max(0.0, end_ms[i] - previous);
        // the GPU ran out of work at `previous` and had this launch only once the host had queued it
        const double idle = i < host_ms.size() ? std::clamp(host_ms[i] - previous, 0.0, span) : 0.0;
        ProfileRow& row = by_name[names[i]];
        row.name = names[i];
        row.calls += 1;
        row.ms += span - idle;
        if (idle > 0.0) {
            const std::string wait_name = kHostWaitRow + names[i];
            ProfileRow& wait = by_name[wait_name];
            wait.name = wait_name;
            wait.calls += 1;
            wait.ms += idle;
        }
        previous = std::max(previous, end_ms[i]);
    }
    std::vector<ProfileRow> rows;
    for (auto& [name, row] : by_name) rows.push_back(row);
    std::stable_sort(rows.begin(), rows.end(),
                     [](const ProfileRow& a, const ProfileRow& b) { return a.ms > b.ms; });
    return rows;
}

}  // namespace aclip::cuda
