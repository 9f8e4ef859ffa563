// storage.h: a block of memory that tensors view, and the CPU allocator behind it.
// Storage is shared by all views of a tensor; its version counter is bumped by every in-place write,
// which is how autograd notices that a tensor it saved for backward has changed.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "engine/core/dtype.h"

namespace aclip {

struct Storage {
    void* data = nullptr;
    size_t bytes = 0;
    Device device = Device::CPU;
    bool pinned = false;  // CPU memory that is page-locked (only when a GPU is present)
    uint64_t version = 0;

    // pin: for CPU storage bound for a GPU, page-locked memory when a GPU is present (else ordinary).
    Storage(size_t bytes, Device device, bool pin = false);
    ~Storage();
    Storage(const Storage&) = delete;
    Storage& operator=(const Storage&) = delete;
};

// Bytes currently held by live CPU storages, and the high-water mark (for memory tests and logs).
size_t cpu_bytes_in_use();
size_t cpu_bytes_peak();
void cpu_bytes_reset_peak();  // the peak restarts from the bytes in use now

// Number of usable CUDA devices: 0 when the CUDA backend is not built or any CUDA call fails.
int cuda_device_count();
bool cuda_backend_built();

}  // namespace aclip
