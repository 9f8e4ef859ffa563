// caching_allocator.cpp: best-fit reuse of cached device blocks, splitting and coalescing within
// segments, frees deferred behind fences, and release-and-retry when the device is out of memory. See
// caching_allocator.h.
#include "engine/cuda/caching_allocator.h"

#include <vector>

#include "engine/core/error.h"

namespace aclip {

bool CachingAllocator::BySize::operator()(const Block* a, const Block* b) const {
    if (a->stream != b->stream) return a->stream < b->stream;
    if (a->size != b->size) return a->size < b->size;
    return a->ptr < b->ptr;
}

size_t CachingAllocator::round_size(size_t bytes) {
    if (bytes == 0) return kRound;
    return (bytes + kRound - 1) / kRound * kRound;
}

size_t CachingAllocator::segment_size(size_t rounded) {
    if (rounded <= kSmallLimit) return kSmallSegment;
    if (rounded <= kMediumLimit) return kMediumSegment;
    return (rounded + kLargeRound - 1) / kLargeRound * kLargeRound;
}

CachingAllocator::~CachingAllocator() {
    // Blocks still handed out belong to tensors that outlive the allocator (static destruction order);
    // their segments are left to the driver, which frees them at process exit.
    std::lock_guard<std::mutex> lock(mutex_);
    release_free_segments_locked();
}

CachingAllocator::Block* CachingAllocator::take_free_block(FreeList& pool, size_t size, StreamId stream) {
    Block key{nullptr, size, stream, false};
    auto it = pool.lower_bound(&key);
    if (it == pool.end() || (*it)->stream != stream) return nullptr;
    Block* b = *it;
    pool.erase(it);
    return b;
}

// Cuts `block` down to `size`, returning the tail to the free list when it is worth keeping apart:
// any tail in the small pool, and tails over 1 MiB in the large pool (smaller ones stay attached, so
// large segments do not crumble into pieces no large request can use).
void CachingAllocator::split(Block* block, size_t size, FreeList& pool) {
    size_t rest = block->size - size;
    bool worth = block->small ? rest >= kRound : rest > kSmallLimit;
    if (!worth) return;
    Block* tail = new Block{block->ptr + size, rest, block->stream, block->small};
    tail->prev = block;
    tail->next = block->next;
    if (block->next) block->next->prev = tail;
    block->next = tail;
    block->size = size;
    pool.insert(tail);
}

void* CachingAllocator::allocate(size_t bytes, StreamId stream) {
    std::lock_guard<std::mutex> lock(mutex_);
    reclaim_fenced_locked(false);
    const size_t size = round_size(bytes);
    const bool small = size <= kSmallLimit;
    FreeList& pool = small ? small_free_ : large_free_;
    Block* block = take_free_block(pool, size, stream);
    if (block) {
        stats_.cache_hits++;
    } else {
        const size_t seg = segment_size(size);
        void* mem = device_.allocate(seg);
        if (!mem) {  // out of memory: give every cached segment back and try once more
            stats_.out_of_memory_retries++;
            reclaim_fenced_locked(true);
            release_free_segments_locked();
            mem = device_.allocate(seg);
        }
        AC_CHECK_HINT(mem != nullptr,
                      "reduce the batch size (train.batch_size) or the model size; the numbers above show "
                      "how much this process holds",
                      "CUDA out of memory: a request of ", bytes, " bytes (a segment of ", seg,
                      " bytes) failed with ", stats_.in_use, " bytes in use and ", stats_.reserved,
                      " bytes reserved by this process");
        stats_.device_allocations++;
        stats_.reserved += seg;
        if (stats_.reserved > stats_.peak_reserved) stats_.peak_reserved = stats_.reserved;
        block = new Block{static_cast<char*>(mem), seg, stream, small};
    }
    split(block, size, pool);
    block->allocated = true;
    allocated_[block->ptr] = block;
    stats_.in_use += block->size;
    if (stats_.in_use > stats_.peak_in_use) stats_.peak_in_use = stats_.in_use;
    return block->ptr;
}

CachingAllocator::Block* CachingAllocator::take_allocated_locked(void* ptr, const char* what) {
    auto it = allocated_.find(ptr);
    AC_CHECK_HINT(it != allocated_.end(), "this is a bug in the engine: please report it",
                  "CachingAllocator::", what, " of a pointer it did not hand out (", ptr, ")");
    Block* b = it->second;
    allocated_.erase(it);
    return b;
}

// Puts a block that is no longer used back on its free list, coalesced with free neighbours of its segment.
void CachingAllocator::return_to_pool_locked(Block* b) {
    stats_.in_use -= b->size;
    b->allocated = false;
    FreeList& pool = pool_of(b);
    for (Block* n : {b->prev, b->next}) {
        if (!n || n->allocated) continue;
        pool.erase(n);
        if (n == b->prev) {
            n->size += b->size;
            n->next = b->next;
            if (b->next) b->next->prev = n;
            delete b;
            b = n;
        } else {
            b->size += n->size;
            b->next = n->next;
            if (n->next) n->next->prev = b;
            delete n;
        }
    }
    pool.insert(b);
}

void CachingAllocator::free(void* ptr) {
    if (!ptr) return;
    std::lock_guard<std::mutex> lock(mutex_);
    return_to_pool_locked(take_allocated_locked(ptr, "free"));
}

void CachingAllocator::free_after_queued_work(void* ptr) {
    if (!ptr) return;
    std::lock_guard<std::mutex> lock(mutex_);
    Block* b = take_allocated_locked(ptr, "free_after_queued_work");  // stays `allocated` for its neighbours
    fenced_.push_back({b, device_.record_fence()});
    stats_.fenced_frees++;
}

// Returns the fenced blocks whose fences have passed (all of them, waiting, when `wait`).
void CachingAllocator::reclaim_fenced_locked(bool wait) {
    while (!fenced_.empty()) {
        Fenced f = fenced_.front();
        if (wait)
            device_.wait_fence(f.fence);
        else if (!device_.fence_passed(f.fence))
            return;  // later fences were recorded after this one: none of them has passed either
        device_.destroy_fence(f.fence);
        fenced_.pop_front();
        return_to_pool_locked(f.block);
    }
}

void CachingAllocator::release_free_segments_locked() {
    for (FreeList* pool : {&small_free_, &large_free_}) {
        std::vector<Block*> whole;
        for (Block* b : *pool)
            if (!b->prev && !b->next) whole.push_back(b);  // a segment with nothing handed out
        for (Block* b : whole) {
            pool->erase(b);
            device_.release(b->ptr);
            stats_.reserved -= b->size;
            stats_.device_releases++;
            delete b;
        }
    }
}

void CachingAllocator::release_cached() {
    std::lock_guard<std::mutex> lock(mutex_);
    reclaim_fenced_locked(false);
    release_free_segments_locked();
}

AllocatorStats CachingAllocator::stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
}

void CachingAllocator::reset_peak() {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.peak_in_use = stats_.in_use;
    stats_.peak_reserved = stats_.reserved;
}

}  // namespace aclip
