// kernel_profile.h: where a GPU step's time goes, kernel by kernel. While a profile is on
// (cuda::profile_start), every kernel launch (AC_CUDA_LAUNCH_CHECK), matrix product and copy records a CUDA
// event behind it in the stream, tagged with its kernel's name; cuda::profile_stop waits for the last one
// and charges each launch with the time from the event before it to its own. That is the launch's run
// time plus any time the GPU sat idle waiting for the host to queue it, so a host-bound stretch shows up
// on the kernel that followed it. Recording an event costs the host a microsecond or two and does not
// stop the GPU from running ahead, unlike timing each kernel with a synchronisation.
// The summary of a timeline is plain C++, tested on the CPU.
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

// Launch i, named names[i], ended end_ms[i] milliseconds after the profile started (times nondecreasing):
// each name's launches and their time, the largest total first (ties by name).
inline std::vector<ProfileRow> summarize_timeline(const std::vector<std::string>& names,
                                                  const std::vector<double>& end_ms) {
    std::map<std::string, ProfileRow> by_name;
    double previous = 0.0;
    for (size_t i = 0; i < names.size() && i < end_ms.size(); ++i) {
        ProfileRow& row = by_name[names[i]];
        row.name = names[i];
        row.calls += 1;
        row.ms += std::max(0.0, end_ms[i] - previous);
        previous = std::max(previous, end_ms[i]);
    }
    std::vector<ProfileRow> rows;
    for (auto& [name, row] : by_name) rows.push_back(row);
    std::stable_sort(rows.begin(), rows.end(),
                     [](const ProfileRow& a, const ProfileRow& b) { return a.ms > b.ms; });
    return rows;
}

}  // namespace aclip::cuda
