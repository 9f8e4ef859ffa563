// sample_rng.h: the uniform draws of one sample's augmentation. Philox keyed by the seed, counting from
// the sample's index, so the same seed and sample give the same crops on any thread.
#pragma once
#include <algorithm>
#include <cstdint>

#include "engine/core/error.h"
#include "engine/math/philox.h"

namespace aclip {

class SampleRng {
  public:
    SampleRng(uint64_t seed, uint64_t sample) : seed_(seed), base_(sample << 20) {}

    double uniform() {  // [0, 1), 53 bits
        uint64_t i = next_++;
        Philox4 r = philox4x32_10(seed_, base_ + i / 2);
        uint64_t bits = (static_cast<uint64_t>(r.v[(i % 2) * 2]) << 32) | r.v[(i % 2) * 2 + 1];
        return static_cast<double>(bits >> 11) * (1.0 / 9007199254740992.0);
    }
    double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
    int64_t randint(int64_t lo, int64_t hi) {  // inclusive
        AC_CHECK(lo <= hi, "randint: empty range [", lo, ", ", hi, "]");
        return lo +
               std::min<int64_t>(hi - lo, static_cast<int64_t>(uniform() * static_cast<double>(hi - lo + 1)));
    }
    bool coin(double p) { return uniform() < p; }

  private:
    uint64_t seed_, base_, next_ = 0;
};

}  // namespace aclip
