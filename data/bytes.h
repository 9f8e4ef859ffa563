// bytes.h: Bytes, a byte vector whose resize leaves new bytes uninitialised. Pixel buffers (decoded
// planes, 8-bit views: 0.05-0.2 MiB each, several per sample) are always overwritten whole, and
// std::vector's zero-fill of them cost 2% of the input pipeline's time (perf, aclip_bench_data).
#pragma once
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

namespace aclip {

// std::allocator, except that value-initialising construction (resize, the size constructor)
// default-initialises: for uint8_t, nothing is written.
template <class T>
struct DefaultInitAllocator : std::allocator<T> {
    template <class U>
    struct rebind {
        using other = DefaultInitAllocator<U>;
    };
    using std::allocator<T>::allocator;
    template <class U>
    void construct(U* p) noexcept {
        ::new (static_cast<void*>(p)) U;
    }
    template <class U, class... Args>
    void construct(U* p, Args&&... args) {
        ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
    }
};

using Bytes = std::vector<uint8_t, DefaultInitAllocator<uint8_t>>;

}  // namespace aclip
