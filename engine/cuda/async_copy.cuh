// async_copy.cuh: copies from global to shared memory that run while the thread goes on (cp.async, sm_80
// and later), so a kernel can fetch its next tile while it multiplies the current one. A thread queues its
// copies, closes them into a group (commit_copies), and later waits until all but its newest N groups
// have landed (wait_copies<N>); a barrier after the wait makes every thread's copies visible to all.
// On emulated threads (tests) a copy happens at once and the waits do nothing: the tests check which
// rows go where, not the waiting, which the GPU's parity cases exercise.
#pragma once
#include <cstdint>
#include <cstring>

#if !defined(__CUDACC__)
#include "engine/cuda/warp_emulation.h"
#endif

namespace aclip::cuda {

#if defined(__CUDACC__)

// 16 bytes from global `src` to shared `dst`, both 16-byte aligned; bypasses L1 (.cg).
__device__ __forceinline__ void copy_async_16(void* dst, const void* src) {
    const uint32_t address = static_cast<uint32_t>(__cvta_generic_to_shared(dst));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(address), "l"(src) : "memory");
}
__device__ __forceinline__ void commit_copies() {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void wait_copies() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

#else  // emulated threads

inline void copy_async_16(void* dst, const void* src) {
    std::memcpy(dst, src, 16);
}
inline void commit_copies() {}
template <int N>
void wait_copies() {}

#endif

}  // namespace aclip::cuda
