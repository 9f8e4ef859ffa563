// random_gpu.h: random inputs for the GPU benchmarks: values in [-1, 1) from a xorshift stream (fast
// enough for hundreds of millions of elements; timing is never done on zeros), copied to the GPU.
#pragma once
#include <cstdint>

#include "engine/core/tensor.h"

namespace aclip {

inline Tensor random_gpu(const Shape& shape, DType dtype, uint64_t seed) {
    Tensor t = empty(shape, DType::F32);
    float* p = t.data<float>();
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t i = 0; i < t.numel(); ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = static_cast<float>(x >> 40) / static_cast<float>(1 << 24) * 2.0f - 1.0f;
    }
    return t.to(dtype).to(Device::CUDA);
}

}  // namespace aclip
