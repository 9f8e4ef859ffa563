// device.cu: device memory for CUDA tensors (cudaMalloc behind the caching allocator), page-locked host
// memory for batches on their way to the GPU (cudaHostAlloc behind a second one), copies between
// host and device, the device's description, and the registry of kernel names.
#include <cuda_runtime.h>

#include <atomic>
#include <mutex>

#include "engine/cuda/cuda_check.cuh"
#include "engine/cuda/cuda_ops.h"

namespace aclip::cuda {

namespace {

class CudaDeviceMemory : public DeviceMemory {
  public:
    void* allocate(size_t bytes) override {
        void* p = nullptr;
        cudaError_t err = cudaMalloc(&p, bytes);
        if (err == cudaErrorMemoryAllocation) {
            cudaGetLastError();  // clear it: the allocator releases its cache and retries
            return nullptr;
        }
        AC_CUDA_CHECK(err);
        return p;
    }
    void release(void* ptr) override { AC_CUDA_CHECK(cudaFree(ptr)); }
};

std::atomic<int> g_device{0};  // this process's GPU (set_device); CUDA's current device is per thread

// Called from loader threads too: each first makes the process's GPU its current device, or CUDA would
// open a context on GPU 0 for it (hundreds of MB there, from every rank of a node). Portable: page-locked
// for every device.
class PinnedHostMemory : public DeviceMemory {
  public:
    void* allocate(size_t bytes) override {
        AC_CUDA_CHECK(cudaSetDevice(g_device.load()));
        void* p = nullptr;
        cudaError_t err = cudaHostAlloc(&p, bytes, cudaHostAllocPortable);
        if (err == cudaErrorMemoryAllocation) {
            cudaGetLastError();
            return nullptr;
        }
        AC_CUDA_CHECK(err);
        return p;
    }
    void release(void* ptr) override {
        AC_CUDA_CHECK(cudaSetDevice(g_device.load()));
        AC_CUDA_CHECK(cudaFreeHost(ptr));
    }
};

CachingAllocator& allocator() {
    // Never destroyed: tensors held in static objects may be freed after main returns.
    static CudaDeviceMemory* device = new CudaDeviceMemory();
    static CachingAllocator* cache = new CachingAllocator(*device);
    return *cache;
}

CachingAllocator& pinned_allocator() {
    static PinnedHostMemory* host = new PinnedHostMemory();
    static CachingAllocator* cache = new CachingAllocator(*host);
    return *cache;
}

}  // namespace

void* allocate(size_t bytes) {
    return allocator().allocate(bytes, 0);
}
void free(void* ptr) {
    allocator().free(ptr);
}
void* allocate_pinned(size_t bytes) {
    return pinned_allocator().allocate(bytes, 0);
}
void free_pinned(void* ptr) {
    pinned_allocator().free(ptr);
}

void memcpy(void* dst, const void* src, size_t bytes, Copy kind) {
    if (bytes == 0) return;
    cudaMemcpyKind k = kind == Copy::HostToDevice   ? cudaMemcpyHostToDevice
                       : kind == Copy::DeviceToHost ? cudaMemcpyDeviceToHost
                                                    : cudaMemcpyDeviceToDevice;
    if (kind == Copy::DeviceToDevice)
        AC_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, k, 0));
    else
        AC_CUDA_CHECK(cudaMemcpy(dst, src, bytes, k));  // pageable host memory: synchronous
    profile_point(kind == Copy::HostToDevice   ? "memcpy host to device"
                  : kind == Copy::DeviceToHost ? "memcpy device to host"
                                               : "memcpy device to device");
}

void synchronize() {
    AC_CUDA_CHECK(cudaDeviceSynchronize());
}

void set_device(int index) {
    AC_CUDA_CHECK(cudaSetDevice(index));
    g_device.store(index);
}

AllocatorStats memory_stats() {
    return allocator().stats();
}
void reset_peak_memory() {
    allocator().reset_peak();
}
void release_cached_memory() {
    allocator().release_cached();
}

std::string device_name() {
    int dev = 0;
    AC_CUDA_CHECK(cudaGetDevice(&dev));
    cudaDeviceProp prop{};
    AC_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
    return str_cat(prop.name, " (sm_", prop.major, prop.minor, ", ", prop.multiProcessorCount, " SMs, ",
                   prop.totalGlobalMem >> 20, " MiB)");
}

namespace {
std::vector<std::string>& registry() {
    static std::vector<std::string> names;
    return names;
}
}  // namespace

KernelRegistration::KernelRegistration(const char* name) {
    registry().push_back(name);
}

const std::vector<std::string>& kernel_names() {
    return registry();
}

}  // namespace aclip::cuda
