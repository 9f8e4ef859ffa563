// device.cu: device memory for CUDA tensors (cudaMalloc behind the caching allocator), page-locked host
// memory for batches on their way to the GPU and for staging (cudaHostAlloc behind a second one, its frees
// fenced by CUDA events), copies between host and device (queued to the GPU; waited for to the host,
// counted as host waits), the index-fault record (index_fault.cuh), the device's description, and the
// registry of kernel names.
#include <cuda_runtime.h>

#include <atomic>
#include <cstring>
#include <mutex>

#include "engine/cuda/cuda_check.cuh"
#include "engine/cuda/cuda_ops.h"
#include "engine/cuda/index_fault.cuh"

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
    // A copy queued from page-locked memory reads it later: its block is reused once the default stream
    // has passed an event recorded at its free. Without a runtime (a storage freed while the process
    // exits) nothing is queued: no fence.
    Fence record_fence() override {
        cudaEvent_t e = nullptr;
        if (cudaSetDevice(g_device.load()) != cudaSuccess ||
            cudaEventCreateWithFlags(&e, cudaEventDisableTiming) != cudaSuccess) {
            cudaGetLastError();
            return nullptr;
        }
        AC_CUDA_CHECK(cudaEventRecord(e, 0));
        return e;
    }
    bool fence_passed(Fence f) override {
        if (!f) return true;
        cudaError_t err = cudaEventQuery(static_cast<cudaEvent_t>(f));
        if (err == cudaErrorNotReady) return false;
        AC_CUDA_CHECK(err);
        return true;
    }
    void wait_fence(Fence f) override {
        if (f) AC_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(f)));
    }
    void destroy_fence(Fence f) override {
        if (f) AC_CUDA_CHECK(cudaEventDestroy(static_cast<cudaEvent_t>(f)));
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

std::atomic<uint64_t> g_host_waits{0};
void count_host_wait() {
    g_host_waits.fetch_add(1, std::memory_order_relaxed);
}

IndexFault* g_fault = nullptr;            // on the device, allocated at the first checking launch
std::atomic<bool> g_fault_unread{false};  // a checking kernel was queued since the record was last read

// Throws the error for a recorded fault, clearing the record first so the process can go on.
[[noreturn]] void throw_index_fault(const IndexFault& f) {
    AC_CUDA_CHECK(cudaMemsetAsync(g_fault, 0, sizeof(IndexFault), 0));
    AC_FAIL_HINT(
        "an index tensor holds a value outside its range; on the GPU indices are checked by the "
        "kernels that use them, and reported here, at the next synchronisation",
        reinterpret_cast<const char*>(f.op), ": index ", f.index, " at position ", f.position,
        " is outside [0, ", f.limit, ") (found on the GPU)");
}

// A queued copy to the host: its event, and a snapshot of the fault record taken behind the copy (in
// page-locked memory; null when no checking kernel had run).
struct QueuedHostCopy {
    cudaEvent_t done = nullptr;
    IndexFault* fault = nullptr;
};

}  // namespace

IndexFault* index_fault_record() {
    static std::once_flag once;
    std::call_once(once, [] {
        // outside the cache: it lives as long as the process
        AC_CUDA_CHECK(cudaMalloc(&g_fault, sizeof(IndexFault)));
        AC_CUDA_CHECK(cudaMemset(g_fault, 0, sizeof(IndexFault)));
    });
    g_fault_unread.store(true);
    return g_fault;
}

void raise_index_fault() {
    if (!g_fault_unread.exchange(false)) return;
    IndexFault f{};
    AC_CUDA_CHECK(cudaMemcpy(&f, g_fault, sizeof f, cudaMemcpyDeviceToHost));  // the device is idle: cheap
    if (f.op != 0) throw_index_fault(f);
}

void* copy_to_host_queued(void* dst, const void* src, size_t bytes) {
    auto* q = new QueuedHostCopy;
    AC_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, 0));
    if (g_fault_unread.load()) {  // the record as the kernels before the copy left it
        q->fault = static_cast<IndexFault*>(pinned_allocator().allocate(sizeof(IndexFault), 0));
        AC_CUDA_CHECK(cudaMemcpyAsync(q->fault, g_fault, sizeof(IndexFault), cudaMemcpyDeviceToHost, 0));
    }
    AC_CUDA_CHECK(cudaEventCreateWithFlags(&q->done, cudaEventDisableTiming));
    AC_CUDA_CHECK(cudaEventRecord(q->done, 0));
    profile_point("memcpy device to host");
    return q;
}

void release_copy(void* copy) {
    auto* q = static_cast<QueuedHostCopy*>(copy);
    AC_CUDA_CHECK(cudaEventDestroy(q->done));  // a pending event is released once it completes
    if (q->fault) pinned_allocator().free_after_queued_work(q->fault);
    delete q;
}

void wait_for_copy(void* copy) {
    auto* q = static_cast<QueuedHostCopy*>(copy);
    const cudaError_t err = cudaEventSynchronize(q->done);
    const IndexFault f = err == cudaSuccess && q->fault ? *q->fault : IndexFault{};
    release_copy(copy);
    AC_CUDA_CHECK(err);
    count_host_wait();
    if (f.op != 0) throw_index_fault(f);
}

uint64_t host_waits() {
    return g_host_waits.load(std::memory_order_relaxed);
}

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
    pinned_allocator().free_after_queued_work(ptr);  // a queued copy may still read it
}

void copy_to_device(void* dst, const void* src, size_t bytes, bool src_pinned) {
    if (bytes == 0) return;
    // The profile names the three ways apart, so that its idle rows say which one the GPU waited for.
    if (src_pinned) {
        AC_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, 0));
        profile_point("memcpy host to device (page-locked)");
    } else if (bytes <= kStagedCopyLimit) {
        void* staging = pinned_allocator().allocate(bytes, 0);
        std::memcpy(staging, src, bytes);
        AC_CUDA_CHECK(cudaMemcpyAsync(dst, staging, bytes, cudaMemcpyHostToDevice, 0));
        pinned_allocator().free_after_queued_work(staging);
        profile_point("memcpy host to device (staged)");
    } else {
        AC_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
        count_host_wait();
        profile_point("memcpy host to device (pageable, the host waits)");
    }
}

void copy_to_host(void* dst, const void* src, size_t bytes) {
    if (bytes == 0) return;
    AC_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
    count_host_wait();
    profile_point("memcpy device to host");
    raise_index_fault();
}

void copy_on_device(void* dst, const void* src, size_t bytes) {
    if (bytes == 0) return;
    AC_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, 0));
    profile_point("memcpy device to device");
}

void synchronize() {
    AC_CUDA_CHECK(cudaDeviceSynchronize());
    count_host_wait();
    raise_index_fault();
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
