// cuda_check.cuh: checks of CUDA runtime and library calls. A failure raises aclip::Error with the call,
// CUDA's message, the file and line, and a hint; a kernel launch is checked right after it is queued.
#pragma once
#include <cuda_runtime.h>

#include "engine/core/error.h"

#define AC_CUDA_CHECK(call)                                                                             \
    do {                                                                                                \
        cudaError_t ac_err_ = (call);                                                                   \
        if (ac_err_ != cudaSuccess)                                                                     \
            ::aclip::throw_error(__FILE__, __LINE__,                                                    \
                                 ::aclip::str_cat(#call, " failed: ", cudaGetErrorString(ac_err_)),     \
                                 "an earlier asynchronous kernel error also surfaces here; rerun with " \
                                 "CUDA_LAUNCH_BLOCKING=1 to find the kernel that failed");              \
    } while (0)

// Also the point where a kernel profile (kernel_profile.h) records the launch.
#define AC_CUDA_LAUNCH_CHECK(kernel_name)                                                              \
    do {                                                                                               \
        cudaError_t ac_err_ = cudaGetLastError();                                                      \
        if (ac_err_ != cudaSuccess)                                                                    \
            ::aclip::throw_error(                                                                      \
                __FILE__, __LINE__,                                                                    \
                ::aclip::str_cat("launch of ", kernel_name, " failed: ", cudaGetErrorString(ac_err_)), \
                "check the launch configuration and the shapes given to the kernel");                  \
        ::aclip::cuda::profile_point(kernel_name);                                                     \
    } while (0)

namespace aclip::cuda {
// The kernel profile's hook (kernel_profile.cu): free while no profile is on.
inline bool g_profile_on = false;
void record_profile_point(const char* name);
inline void profile_point(const char* name) {
    if (g_profile_on) record_profile_point(name);
}

// Adds a kernel's name to the registry (cuda_ops.h: kernel_names) at static initialisation.
struct KernelRegistration {
    explicit KernelRegistration(const char* name);
};
}  // namespace aclip::cuda
#define AC_REGISTER_KERNEL_CAT2(a, b) a##b
#define AC_REGISTER_KERNEL_CAT(a, b) AC_REGISTER_KERNEL_CAT2(a, b)
#define AC_REGISTER_KERNEL(name) \
    static ::aclip::cuda::KernelRegistration AC_REGISTER_KERNEL_CAT(ac_kernel_reg_, __LINE__)(name)
#define AC_REGISTER_KERNEL_NAMED(id, name) static ::aclip::cuda::KernelRegistration ac_kernel_reg_##id(name)
