// storage.cpp: aligned CPU allocation with byte accounting; CUDA storage, and page-locked CPU storage,
// come from the CUDA backend's caching allocators (engine/cuda), after clear errors when there is no
// backend or no device.
#include "engine/core/storage.h"

#include <atomic>
#include <cstdlib>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "engine/cuda/cuda_ops.h"

namespace aclip {

namespace {
constexpr size_t kCpuAlignment = 64;  // one cache line; also enough for AVX-512 loads
std::atomic<size_t> g_cpu_in_use{0};
std::atomic<size_t> g_cpu_peak{0};

// A training step frees its activations and allocates the same sizes again in the next step. By default
// glibc serves large blocks from fresh mmaps and hands freed memory back to the system, so every step
// page-faults on its activations and the kernel zeroes each page again: 298,000 faults in the quickstart
// model's step benchmark (aclip_bench_step). Keeping freed memory in the heap for reuse (blocks up to
// 32 MiB from the heap, up to 1 GiB of free heap kept) cut that to 86,000 and the step from 195 to 182 ms
// (perf stat, best of six interleaved runs each). The cost: the process keeps its peak footprint, plus up
// to 1 GiB, instead of returning memory between steps. Set once, at the first CPU allocation.
void keep_freed_memory_for_reuse() {
#if defined(__GLIBC__)
    static const bool once = [] {
        mallopt(M_MMAP_THRESHOLD, 32 << 20);
        mallopt(M_TRIM_THRESHOLD, 1 << 30);
        return true;
    }();
    (void)once;
#endif
}
}  // namespace

Storage::Storage(size_t nbytes, Device dev, bool pin) : bytes(nbytes), device(dev) {
    if (dev == Device::CUDA) {
        AC_CHECK_HINT(cuda_backend_built(),
                      "configure with -DACLIP_CUDA=ON on a machine with nvcc, or keep tensors on the CPU",
                      "cannot allocate a CUDA tensor of ", nbytes, " bytes: this build has no CUDA backend");
        AC_CHECK_HINT(cuda_device_count() > 0, "run on a machine with an NVIDIA GPU and a working driver",
                      "cannot allocate a CUDA tensor of ", nbytes, " bytes: no CUDA device is present");
        data = cuda::allocate(nbytes);
        return;
    }
    keep_freed_memory_for_reuse();
    pinned = pin && cuda_backend_built() && cuda_device_count() > 0;
    size_t rounded = (nbytes + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
    if (rounded == 0) rounded = kCpuAlignment;
    data = pinned ? cuda::allocate_pinned(rounded) : std::aligned_alloc(kCpuAlignment, rounded);
    AC_CHECK_HINT(data != nullptr, "reduce the batch size or model size", "out of CPU memory allocating ",
                  nbytes, " bytes");
    size_t now = g_cpu_in_use.fetch_add(nbytes) + nbytes;
    size_t peak = g_cpu_peak.load();
    while (now > peak && !g_cpu_peak.compare_exchange_weak(peak, now)) {
    }
}

Storage::~Storage() {
    if (!data) return;
    if (device == Device::CUDA) {
        cuda::free(data);
        return;
    }
    if (pinned)
        cuda::free_pinned(data);
    else
        std::free(data);
    g_cpu_in_use.fetch_sub(bytes);
}

size_t cpu_bytes_in_use() {
    return g_cpu_in_use.load();
}
size_t cpu_bytes_peak() {
    return g_cpu_peak.load();
}
void cpu_bytes_reset_peak() {
    g_cpu_peak.store(g_cpu_in_use.load());
}

}  // namespace aclip
