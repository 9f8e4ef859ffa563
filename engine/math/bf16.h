// bf16.h: the bfloat16 storage type and its conversions, shared by host and device.
// f32 -> bf16 rounds to nearest, ties to even, and keeps NaN quiet: on the GPU the hardware's conversion
// (cvt.rn.bf16.f32), on the CPU the same rounding in integer arithmetic, so CPU and GPU agree bit for bit
// on every number (a NaN is NaN on both; its payload bits may differ).
#pragma once
#include <cstdint>
#include <cstring>

#include "engine/math/host_device.h"

namespace aclip {

struct bf16 {
    uint16_t bits = 0;
};

AC_HD uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

AC_HD float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

AC_HD bf16 bf16_from_f32(float f) {
    bf16 out;
#if defined(__CUDA_ARCH__)
    // One instruction; the integer rounding below is about eight at half the float rate, which made it a
    // fifth of a bf16 GELU's instructions (a kernel at the instruction limit).
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(out.bits) : "f"(f));
    return out;
#else
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) {  // NaN: keep the sign, force a quiet NaN
        out.bits = static_cast<uint16_t>((u >> 16) | 0x0040u);
        return out;
    }
    uint32_t rounding_bias = 0x7fffu + ((u >> 16) & 1u);  // ties to even
    out.bits = static_cast<uint16_t>((u + rounding_bias) >> 16);
    return out;
#endif
}

AC_HD float bf16_to_f32(bf16 h) {
    return f32_from_bits(static_cast<uint32_t>(h.bits) << 16);
}

}  // namespace aclip
