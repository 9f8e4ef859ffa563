// gpu_skip.h: how GPU test cases behave without a GPU. They are skipped and counted (main.cpp prints the
// count), unless the binary runs with --require-gpu, when a skip is a failure.
#pragma once
#include <doctest/doctest.h>

#include <string>

#include "engine/core/storage.h"

namespace aclip::test {
extern bool g_require_gpu;
extern int g_gpu_skips;

// True when the case can run; otherwise records the skip (or the failure under --require-gpu).
inline bool gpu_available(const char* what) {
    if (cuda_device_count() > 0) return true;
    if (g_require_gpu) {
        FAIL_CHECK(std::string(what) << ": no CUDA device, and --require-gpu was given");
    } else {
        ++g_gpu_skips;
        MESSAGE(std::string(what) << ": skipped, no CUDA device");
    }
    return false;
}
}  // namespace aclip::test
