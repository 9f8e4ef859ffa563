// kernel_profile.cu: the kernel profile of kernel_profile.h: an event recorded behind every launch while
// it is on, turned into each kernel name's time when it stops. Events are kept for the next profile.
#include <cuda_runtime.h>

#include <chrono>
#include <vector>

#include "engine/cuda/cuda_check.cuh"
#include "engine/cuda/cuda_ops.h"
#include "engine/cuda/kernel_profile.h"

namespace aclip::cuda {

namespace {

struct Timeline {
    cudaEvent_t start = nullptr;
    std::chrono::steady_clock::time_point host_start;
    std::vector<cudaEvent_t> events;  // a pool: events[0 .. names.size()) are this profile's
    std::vector<const char*> names;   // kernel names are literals or static tables
    std::vector<double> host_ms;      // when each launch had been queued, from host_start
};

Timeline& timeline() {
    static Timeline* t = new Timeline();  // never destroyed: events outlive static destruction order
    return *t;
}

cudaEvent_t event_at(size_t i) {
    Timeline& t = timeline();
    while (t.events.size() <= i) {
        cudaEvent_t e;
        AC_CUDA_CHECK(cudaEventCreate(&e));
        t.events.push_back(e);
    }
    return t.events[i];
}

}  // namespace

void record_profile_point(const char* name) {
    Timeline& t = timeline();
    AC_CUDA_CHECK(cudaEventRecord(event_at(t.names.size()), 0));
    t.names.push_back(name);
    t.host_ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t.host_start).count());
}

void profile_start() {
    AC_CHECK(!g_profile_on, "profile_start: a kernel profile is already on");
    Timeline& t = timeline();
    if (!t.start) AC_CUDA_CHECK(cudaEventCreate(&t.start));
    t.names.clear();
    t.host_ms.clear();
    AC_CUDA_CHECK(cudaDeviceSynchronize());  // nothing queued: the start event completes as it is recorded
    AC_CUDA_CHECK(cudaEventRecord(t.start, 0));
    t.host_start = std::chrono::steady_clock::now();
    g_profile_on = true;
}

std::vector<ProfileRow> profile_stop() {
    AC_CHECK(g_profile_on, "profile_stop: no kernel profile is on (call profile_start first)");
    g_profile_on = false;
    Timeline& t = timeline();
    AC_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<std::string> names;
    std::vector<double> end_ms;
    for (size_t i = 0; i < t.names.size(); ++i) {
        float ms = 0.0f;
        AC_CUDA_CHECK(cudaEventElapsedTime(&ms, t.start, t.events[i]));
        names.emplace_back(t.names[i]);
        end_ms.push_back(ms);
    }
    return summarize_timeline(names, end_ms, t.host_ms);
}

}  // namespace aclip::cuda
