// init.cpp: see init.h. Values are generated in f64 on the host and converted to the tensor's dtype.
#include "engine/nn/init.h"

#include <cmath>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/cpu/strided_loop.h"
#include "engine/math/philox.h"

namespace aclip {

namespace {

template <class Gen>
void fill_with(Tensor& t, Gen value_at) {
    AC_CHECK(t.is_contiguous() && is_floating(t.dtype()), "init: needs a contiguous floating tensor, got ",
             t.desc());
    std::vector<double> v(t.numel());
    parallel_for(t.numel(), 64, [&](int64_t i) { v[i] = value_at(static_cast<uint64_t>(i)); });
    NoGradGuard no_grad;
    t.copy_(from_vector(v, t.shape()));
}

uint64_t blocks_for(int64_t n) {
    return static_cast<uint64_t>(n + 3) / 4;
}

}  // namespace

void init_normal(Tensor& t, Generator& gen, double mean, double std) {
    uint64_t off = gen.reserve(blocks_for(t.numel()));
    fill_with(t, [&](uint64_t i) { return mean + std * normal_at(gen.seed, off, i); });
}

void init_trunc_normal(Tensor& t, Generator& gen, double std, double lo, double hi) {
    // Redraw outside [lo, hi] sigmas from later sections of the stream; after 32 tries clamp (p < 1e-40).
    const int64_t n = t.numel();
    constexpr int kTries = 32;
    uint64_t off = gen.reserve(blocks_for(n) * kTries);
    fill_with(t, [&](uint64_t i) {
        double z = 0;
        for (int k = 0; k < kTries; ++k) {
            z = normal_at(gen.seed, off, i + static_cast<uint64_t>(k) * n);
            if (z >= lo && z <= hi) break;
        }
        return std * std::min(std::max(z, lo), hi);
    });
}

void init_uniform(Tensor& t, Generator& gen, double lo, double hi) {
    uint64_t off = gen.reserve(blocks_for(t.numel()));
    fill_with(t,
              [&](uint64_t i) { return lo + (hi - lo) * uniform_from_word(philox_word(gen.seed, off, i)); });
}

void init_fan_in_uniform(Tensor& t, Generator& gen, int64_t fan_in) {
    double bound = 1.0 / std::sqrt(static_cast<double>(std::max<int64_t>(fan_in, 1)));
    init_uniform(t, gen, -bound, bound);
}

void init_zeros(Tensor& t) {
    NoGradGuard no_grad;
    t.zero_();
}

void init_ones(Tensor& t) {
    NoGradGuard no_grad;
    t.fill_(1.0);
}

}  // namespace aclip
