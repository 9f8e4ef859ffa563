// caching_allocator.h: the device-memory cache behind every CUDA tensor.
// cudaMalloc and cudaFree synchronise the device and cost tens of microseconds, so freed blocks are kept
// and reused. The policy (size classes, splitting of cached segments, per-stream free lists, frees behind
// fences for memory a queued copy still reads, statistics, release-and-retry on out-of-memory) is plain C++
// written against the DeviceMemory interface: the CUDA backend plugs in cudaMalloc (and cudaHostAlloc with
// CUDA events as fences, for page-locked host memory), and the unit tests plug in a fake device with a
// byte limit and a queue they run by hand, so all of it is tested on machines without a GPU.
#pragma once
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <set>
#include <unordered_map>

namespace aclip {

// Where segments come from. allocate returns nullptr when the device is out of memory (never throws).
// A fence marks the work queued on the device so far (a CUDA event); memory that queued work still reads
// is freed with CachingAllocator::free_after_queued_work and reused only once its fence has passed. The
// defaults suit memory that no queue reads: every fence has passed at once.
class DeviceMemory {
  public:
    using Fence = void*;
    virtual ~DeviceMemory() = default;
    virtual void* allocate(size_t bytes) = 0;
    virtual void release(void* ptr) = 0;
    virtual Fence record_fence() { return nullptr; }
    virtual bool fence_passed(Fence) { return true; }
    virtual void wait_fence(Fence) {}
    virtual void destroy_fence(Fence) {}
};

using StreamId = uintptr_t;  // an opaque stream handle (cudaStream_t); 0 is the default stream

struct AllocatorStats {
    size_t in_use = 0;         // bytes in blocks handed out (rounded sizes)
    size_t peak_in_use = 0;    // high-water mark of in_use
    size_t reserved = 0;       // bytes held from the device (in use + cached)
    size_t peak_reserved = 0;  // high-water mark of reserved
    uint64_t device_allocations = 0;
    uint64_t device_releases = 0;
    uint64_t cache_hits = 0;             // requests served from cached blocks
    uint64_t out_of_memory_retries = 0;  // times the cache was emptied to satisfy a request
    uint64_t fenced_frees = 0;           // blocks freed behind a fence (free_after_queued_work)
};

class CachingAllocator {
  public:
    static constexpr size_t kRound = 512;             // every block is a multiple of this
    static constexpr size_t kSmallLimit = 1 << 20;    // requests up to 1 MiB share small segments
    static constexpr size_t kSmallSegment = 2 << 20;  // 2 MiB segments for small requests
    static constexpr size_t kMediumLimit = 10 << 20;  // requests up to 10 MiB share 20 MiB segments
    static constexpr size_t kMediumSegment = 20 << 20;
    static constexpr size_t kLargeRound = 2 << 20;  // larger requests get their own segment

    explicit CachingAllocator(DeviceMemory& device) : device_(device) {}
    ~CachingAllocator();
    CachingAllocator(const CachingAllocator&) = delete;
    CachingAllocator& operator=(const CachingAllocator&) = delete;

    // A block of at least `bytes` (256-byte aligned when the device's segments are), usable on `stream`.
    // Throws aclip::Error naming the request and the statistics when the device is full even after the
    // cache was released.
    void* allocate(size_t bytes, StreamId stream = 0);
    void free(void* ptr);  // nullptr is ignored; an unknown pointer is an error
    // Frees ptr once the work queued on the device now has run (a copy still reading it): until its fence
    // passes the block counts as in use and is not handed out. Fences are polled at each allocate, oldest
    // first, and waited for before the cache is released on out-of-memory.
    void free_after_queued_work(void* ptr);
    void release_cached();  // gives every wholly free segment back to the device
    AllocatorStats stats() const;
    void reset_peak();

    static size_t round_size(size_t bytes);      // the size class of a request
    static size_t segment_size(size_t rounded);  // the segment a new request of that class gets

  private:
    struct Block {
        char* ptr;
        size_t size;
        StreamId stream;
        bool small;              // belongs to the small pool
        bool allocated = false;  // handed out, or freed behind a fence that has not passed
        Block* prev = nullptr;   // neighbours in the same segment (address order)
        Block* next = nullptr;
    };
    struct BySize {  // free lists are ordered by (stream, size, address): best fit on the same stream
        bool operator()(const Block* a, const Block* b) const;
    };
    using FreeList = std::set<Block*, BySize>;

    struct Fenced {
        Block* block;
        DeviceMemory::Fence fence;
    };

    Block* take_free_block(FreeList& pool, size_t size, StreamId stream);
    Block* take_allocated_locked(void* ptr, const char* what);
    void return_to_pool_locked(Block* b);
    void reclaim_fenced_locked(bool wait);
    void split(Block* block, size_t size, FreeList& pool);
    void release_free_segments_locked();
    FreeList& pool_of(const Block* b) { return b->small ? small_free_ : large_free_; }

    DeviceMemory& device_;
    mutable std::mutex mutex_;
    FreeList small_free_, large_free_;
    std::unordered_map<void*, Block*> allocated_;
    std::deque<Fenced> fenced_;  // in the order freed: fences pass in that order on one queue
    AllocatorStats stats_;
};

}  // namespace aclip
