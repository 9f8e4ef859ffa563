// init.h: parameter initialisers on the counter-based Philox stream (engine/math/philox.h).
// A Generator is a seed plus an offset; each draw reserves the counters it uses, so the same seed gives
// the same parameters whatever else is drawn later, and a CUDA kernel can reproduce any element.
#pragma once
#include <cstdint>

#include "engine/core/tensor.h"

namespace aclip {

struct Generator {
    uint64_t seed = 0;
    uint64_t offset = 0;  // in Philox blocks (4 words each)
    explicit Generator(uint64_t s = 0) : seed(s) {}
    uint64_t reserve(uint64_t blocks) {
        uint64_t o = offset;
        offset += blocks;
        return o;
    }
};

void init_normal(Tensor& t, Generator& gen, double mean, double std);
void init_trunc_normal(Tensor& t, Generator& gen, double std, double lo_sigmas = -2, double hi_sigmas = 2);
void init_uniform(Tensor& t, Generator& gen, double lo, double hi);
void init_fan_in_uniform(Tensor& t, Generator& gen, int64_t fan_in);  // U(-1/sqrt(fan_in), 1/sqrt(fan_in))
void init_zeros(Tensor& t);
void init_ones(Tensor& t);

}  // namespace aclip
