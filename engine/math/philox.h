// philox.h: Philox4x32-10, a counter-based random number generator (Salmon et al., SC'11).
// Each (seed, counter) pair maps to four independent 32-bit words, with no state between calls, so a
// CUDA thread and a CPU loop that ask for element i of a draw get the same number. Uniform and normal
// draws are derived from those words here, shared by host and device.
#pragma once
#include <cmath>
#include <cstdint>

#include "engine/math/host_device.h"

namespace aclip {

struct Philox4 {
    uint32_t v[4];
};

// The bijection itself, on a 128-bit counter and a 64-bit key (checked against Random123's test vectors).
AC_HD Philox4 philox4x32_10_raw(Philox4 ctr, uint32_t k0, uint32_t k1) {
    const uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
    const uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
    uint32_t c0 = ctr.v[0], c1 = ctr.v[1], c2 = ctr.v[2], c3 = ctr.v[3];
    for (int round = 0; round < 10; ++round) {
        uint64_t p0 = static_cast<uint64_t>(kMul0) * c0;
        uint64_t p1 = static_cast<uint64_t>(kMul1) * c2;
        uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
        uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
        c1 = static_cast<uint32_t>(p1);
        c3 = static_cast<uint32_t>(p0);
        c0 = n0;
        c2 = n2;
        k0 += kWeyl0;
        k1 += kWeyl1;
    }
    return Philox4{{c0, c1, c2, c3}};
}

// Block `counter` of the stream `seed`.
AC_HD Philox4 philox4x32_10(uint64_t seed, uint64_t counter) {
    Philox4 ctr{{static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32), 0u, 0u}};
    return philox4x32_10_raw(ctr, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// Element i of a draw: word (i % 4) of block (offset + i / 4).
AC_HD uint32_t philox_word(uint64_t seed, uint64_t offset, uint64_t i) {
    return philox4x32_10(seed, offset + i / 4).v[i % 4];
}

// Uniform in (0, 1): 24 random bits, centred in their bucket so 0 and 1 never occur.
AC_HD float uniform_from_word(uint32_t w) {
    return ((w >> 8) + 0.5f) * (1.0f / 16777216.0f);
}

// Standard normal for element i: Box-Muller on the pair of words (2j, 2j+1) where j = i / 2.
AC_HD double normal_at(uint64_t seed, uint64_t offset, uint64_t i) {
    uint64_t pair = i / 2;
    Philox4 r = philox4x32_10(seed, offset + pair / 2);
    uint32_t w0 = r.v[(pair % 2) * 2], w1 = r.v[(pair % 2) * 2 + 1];
    double u0 = (static_cast<double>(w0) + 0.5) / 4294967296.0;
    double u1 = (static_cast<double>(w1) + 0.5) / 4294967296.0;
    double radius = ::sqrt(-2.0 * ::log(u0));
    double angle = 6.283185307179586 * u1;
    return (i % 2 == 0) ? radius * ::cos(angle) : radius * ::sin(angle);
}

}  // namespace aclip
