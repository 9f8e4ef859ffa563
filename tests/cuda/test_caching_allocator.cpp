// test_caching_allocator.cpp: the CUDA caching allocator's policy, run on the CPU against a fake device
// (host memory with a byte limit), so every rule is tested without a GPU: size classes, reuse, splitting
// and coalescing, streams kept apart, statistics, release-and-retry on out-of-memory, frees behind fences
// (reused only after queued work ran; waited for before out-of-memory fails), and that blocks handed out
// never overlap.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "engine/core/error.h"
#include "engine/cuda/caching_allocator.h"

namespace aclip {

namespace {

class FakeDevice : public DeviceMemory {
  public:
    explicit FakeDevice(size_t capacity) : capacity_(capacity) {}
    ~FakeDevice() override { CHECK(live_.empty()); }
    void* allocate(size_t bytes) override {
        if (used_ + bytes > capacity_) return nullptr;
        void* p = std::aligned_alloc(256, bytes);
        used_ += bytes;
        live_[p] = bytes;
        allocations++;
        return p;
    }
    void release(void* p) override {
        REQUIRE(live_.count(p) == 1);
        used_ -= live_[p];
        live_.erase(p);
        std::free(p);
    }
    size_t used() const { return used_; }
    int allocations = 0;

  private:
    size_t capacity_, used_ = 0;
    std::map<void*, size_t> live_;
};

// A device with a queue the test runs by hand: fence k passes once `run_until(k)` said so, as a CUDA
// event passes once the stream has reached it. wait_fence runs the queue up to that fence.
class QueuedFakeDevice : public FakeDevice {
  public:
    using FakeDevice::FakeDevice;
    Fence record_fence() override { return reinterpret_cast<Fence>(++recorded); }
    bool fence_passed(Fence f) override { return number(f) <= ran; }
    void wait_fence(Fence f) override {
        waits++;
        ran = std::max(ran, number(f));
    }
    void destroy_fence(Fence f) override {
        CHECK(number(f) > destroyed);  // each once, oldest first
        destroyed = number(f);
    }
    void run_until(uintptr_t k) { ran = k; }
    uintptr_t recorded = 0, ran = 0, destroyed = 0;
    int waits = 0;

  private:
    static uintptr_t number(Fence f) { return reinterpret_cast<uintptr_t>(f); }
};

using CA = CachingAllocator;

}  // namespace

TEST_SUITE("cuda") {
    TEST_CASE("allocator: size classes round to 512 bytes; segments of 2 MiB, 20 MiB or the request") {
        CHECK(CA::round_size(0) == 512);
        CHECK(CA::round_size(1) == 512);
        CHECK(CA::round_size(512) == 512);
        CHECK(CA::round_size(513) == 1024);
        CHECK(CA::segment_size(512) == (2u << 20));
        CHECK(CA::segment_size(1u << 20) == (2u << 20));
        CHECK(CA::segment_size((1u << 20) + 512) == (20u << 20));
        CHECK(CA::segment_size(10u << 20) == (20u << 20));
        CHECK(CA::segment_size((10u << 20) + 512) == (12u << 20));  // rounded up to 2 MiB
    }

    TEST_CASE("allocator: small blocks share a segment and a freed block is reused") {
        FakeDevice dev(64 << 20);
        {
            CA a(dev);
            void* p = a.allocate(1000);
            void* q = a.allocate(3000);
            CHECK(dev.allocations == 1);  // both carved from one 2 MiB segment
            CHECK(static_cast<char*>(q) == static_cast<char*>(p) + 1024);
            a.free(p);
            void* r = a.allocate(700);  // best fit: the freed 1024-byte block
            CHECK(r == p);
            CHECK(a.stats().cache_hits >= 2);
            CHECK(a.stats().in_use == 1024 + 3072);
            a.free(q);
            a.free(r);
            CHECK(a.stats().in_use == 0);
            CHECK(a.stats().reserved == (2u << 20));
            a.release_cached();
            CHECK(a.stats().reserved == 0);
            CHECK(dev.used() == 0);
        }
    }

    TEST_CASE("allocator: freed neighbours coalesce back into a whole segment") {
        FakeDevice dev(64 << 20);
        CA a(dev);
        std::vector<void*> blocks;
        for (int i = 0; i < 8; ++i) blocks.push_back(a.allocate(4096));
        for (int i : {1, 3, 5, 7, 0, 2, 6, 4}) a.free(blocks[i]);  // out of order
        // Whole again: a request of the full segment's usable size is served without a new segment.
        void* big = a.allocate(1 << 20);
        CHECK(dev.allocations == 1);
        a.free(big);
        a.release_cached();
        CHECK(dev.used() == 0);
    }

    TEST_CASE("allocator: streams do not share cached blocks") {
        FakeDevice dev(64 << 20);
        CA a(dev);
        void* p = a.allocate(4096, /*stream=*/1);
        a.free(p);
        void* q = a.allocate(4096, /*stream=*/2);  // the stream-1 block is not handed to stream 2
        CHECK(dev.allocations == 2);
        void* r = a.allocate(4096, /*stream=*/1);
        CHECK(r == p);
        a.free(q);
        a.free(r);
    }

    TEST_CASE("allocator: large blocks keep small tails attached; big tails split off") {
        FakeDevice dev(256 << 20);
        CA a(dev);
        void* p = a.allocate(12 << 20);  // its own 12 MiB segment
        a.free(p);
        void* q = a.allocate(11 << 20);  // tail of 1 MiB: not worth splitting, whole block handed out
        CHECK(q == p);
        CHECK(a.stats().in_use == (12u << 20));
        a.free(q);
        void* r = a.allocate(5 << 20);  // 7 MiB tail: split off and cached
        CHECK(r == p);
        CHECK(a.stats().in_use == (5u << 20));
        void* t = a.allocate(5 << 20);  // served from the tail
        CHECK(static_cast<char*>(t) == static_cast<char*>(p) + (5 << 20));
        CHECK(dev.allocations == 1);
        a.free(r);
        a.free(t);
        void* whole = a.allocate(12 << 20);  // coalesced back into the whole segment
        CHECK(whole == p);
        CHECK(dev.allocations == 1);
        a.free(whole);
    }

    TEST_CASE("allocator: out of memory releases the cache and retries, then fails with a clear error") {
        FakeDevice dev(24 << 20);
        CA a(dev);
        void* p = a.allocate(12 << 20);
        a.free(p);                       // 12 MiB cached, 12 MiB free on the device
        void* q = a.allocate(16 << 20);  // does not fit beside the cache: cache released, retried
        CHECK(q != nullptr);
        CHECK(a.stats().out_of_memory_retries == 1);
        CHECK(a.stats().device_releases == 1);
        try {
            a.allocate(16 << 20);
            FAIL("expected an out-of-memory error");
        } catch (const Error& e) {
            std::string msg = e.what();
            CHECK(msg.find("CUDA out of memory") != std::string::npos);
            CHECK(msg.find("16777216 bytes in use") != std::string::npos);
            CHECK(msg.find("HINT") != std::string::npos);
        }
        a.free(q);
    }

    TEST_CASE("allocator: statistics track current and peak bytes") {
        FakeDevice dev(64 << 20);
        CA a(dev);
        void* p = a.allocate(1 << 20);
        void* q = a.allocate(1 << 20);
        a.free(p);
        AllocatorStats s = a.stats();
        CHECK(s.in_use == (1u << 20));
        CHECK(s.peak_in_use == (2u << 20));
        a.reset_peak();
        CHECK(a.stats().peak_in_use == (1u << 20));
        a.free(q);
        CHECK_THROWS_AS(a.free(reinterpret_cast<void*>(0x1234)), Error);
        CHECK_THROWS_AS(a.free_after_queued_work(reinterpret_cast<void*>(0x1234)), Error);
    }

    TEST_CASE("allocator: a block freed behind a fence is reused only after its fence has passed") {
        QueuedFakeDevice dev(64 << 20);
        CA a(dev);
        void* p = a.allocate(4096);
        a.free_after_queued_work(p);  // a queued copy still reads p: fence 1
        CHECK(a.stats().in_use == 4096);
        CHECK(a.stats().fenced_frees == 1);
        void* q = a.allocate(4096);  // fence 1 has not passed: a different block
        CHECK(q != p);
        a.free_after_queued_work(q);  // fence 2
        dev.run_until(1);
        void* r = a.allocate(4096);  // p is back (q's fence has not passed)
        CHECK(r == p);
        CHECK(a.stats().in_use == 2 * 4096);
        a.free(r);
        dev.run_until(2);
        a.release_cached();  // reclaims q, then the whole segment goes back
        CHECK(a.stats().in_use == 0);
        CHECK(dev.destroyed == 2);
        CHECK(dev.used() == 0);
        CHECK(dev.waits == 0);  // nothing had to wait
    }

    TEST_CASE("allocator: out of memory waits for fenced blocks before it releases the cache") {
        QueuedFakeDevice dev(24 << 20);
        CA a(dev);
        void* p = a.allocate(12 << 20);
        a.free_after_queued_work(p);     // its fence has not passed
        void* q = a.allocate(16 << 20);  // needs p's segment back: waits for the fence, releases, retries
        CHECK(q != nullptr);
        CHECK(dev.waits == 1);
        CHECK(a.stats().device_releases == 1);
        CHECK(a.stats().in_use == (16u << 20));
        a.free(q);
        a.release_cached();
        CHECK(dev.used() == 0);
    }

    TEST_CASE("allocator: random traffic never hands out overlapping blocks and ends with nothing in use") {
        QueuedFakeDevice dev(512 << 20);
        CA a(dev);
        std::mt19937 rng(7);
        struct Live {
            char* p;
            size_t n;
            char tag;
        };
        std::vector<Live> live, fenced;
        for (int step = 0; step < 4000; ++step) {
            if (!live.empty() && rng() % 2) {
                size_t k = rng() % live.size();
                bool intact = true;  // no other block was written over this one
                for (size_t i = 0; i < live[k].n; i += 97) intact = intact && live[k].p[i] == live[k].tag;
                REQUIRE(intact);
                if (rng() % 3 == 0) {
                    a.free_after_queued_work(live[k].p);  // the queue runs on a few steps later
                    fenced.push_back({live[k].p, live[k].n, live[k].tag});
                } else {
                    a.free(live[k].p);
                }
                live.erase(live.begin() + static_cast<long>(k));
                if (rng() % 4 == 0) {
                    for (const Live& f : fenced) {  // not reused before its fence passed: still intact
                        bool untouched = true;
                        for (size_t i = 0; i < f.n; i += 97) untouched = untouched && f.p[i] == f.tag;
                        REQUIRE(untouched);
                    }
                    fenced.clear();
                    dev.run_until(dev.recorded);
                }
            } else {
                size_t bytes = rng() % 3 == 0 ? (rng() % (12 << 20)) + 1 : (rng() % 70000) + 1;
                char* p = static_cast<char*>(a.allocate(bytes, rng() % 2));
                char tag = static_cast<char>(step % 251);
                std::memset(p, tag, bytes);
                live.push_back({p, bytes, tag});
            }
        }
        std::set<std::pair<char*, char*>> spans;
        for (const Live& l : live) spans.insert({l.p, l.p + l.n});
        char* end = nullptr;
        for (auto& [b, e] : spans) {
            CHECK(b >= end);  // sorted by start: each starts after the previous ends
            end = e;
        }
        for (const Live& l : live) a.free(l.p);
        dev.run_until(dev.recorded);
        a.release_cached();
        CHECK(a.stats().in_use == 0);
        CHECK(dev.used() == 0);
    }
}

}  // namespace aclip
