// mma.cuh: warp-level tensor-core primitives for bf16 (sm_80 and later): the m16n8k16 matrix
// multiply-accumulate with f32 accumulators, ldmatrix, and the packing of f32 pairs into bf16x2
// registers. Kernels that tile their own products (the flash attention of attention_mma.cu) build on
// these; large matrix products go through cuBLASLt (matmul.cu).
//
// Fragment layouts of mma.m16n8k16 (PTX ISA), per lane with g = lane / 4 and t = lane % 4; each 32-bit
// register holds two bf16, the lower column (or row of B) in its low half:
//   A (16 x 16, row-major): a[0] = A[g][2t, 2t+1]     a[1] = A[g+8][2t, 2t+1]
//                           a[2] = A[g][2t+8, 2t+9]   a[3] = A[g+8][2t+8, 2t+9]
//   B (16 x 8, k x n):      b[0] = B[2t, 2t+1][g]     b[1] = B[2t+8, 2t+9][g]
//   C (16 x 8, f32):        c[0], c[1] = C[g][2t, 2t+1]   c[2], c[3] = C[g+8][2t, 2t+1]
// Two C tiles side by side (columns 0-7 and 8-15) hold, once packed to bf16, exactly an A fragment of the
// next product: a[0] = pack(left c[0], c[1]), a[1] = pack(left c[2], c[3]), a[2] and a[3] the same of the
// right tile. Flash attention relies on this to feed its probabilities to the second product without
// shared memory.
//
// Compiled by nvcc these are inline PTX; compiled by a host compiler (tests) they run on the emulated warp
// of warp_emulation.h, with the same layouts.
#pragma once
#include <cstdint>

#include "engine/math/bf16.h"

#if !defined(__CUDACC__)
#include "engine/cuda/warp_emulation.h"
#endif

namespace aclip::cuda {

struct FragA {
    uint32_t x[4];
};
struct FragB {
    uint32_t x[2];
};
struct FragC {
    float x[4] = {0.0f, 0.0f, 0.0f, 0.0f};
};

// The bf16 in the low (half 0) or high (half 1) 16 bits of a register, as a float.
__device__ __forceinline__ float unpack_bf16(uint32_t word, int half) {
    return bf16_to_f32(bf16{static_cast<uint16_t>(half ? word >> 16 : word & 0xffffu)});
}

#if defined(__CUDACC__)

// c += a b
__device__ __forceinline__ void mma_bf16(FragC& c, const FragA& a, const FragB& b) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c.x[0]), "+f"(c.x[1]), "+f"(c.x[2]), "+f"(c.x[3])
        : "r"(a.x[0]), "r"(a.x[1]), "r"(a.x[2]), "r"(a.x[3]), "r"(b.x[0]), "r"(b.x[1]));
}

// Two floats rounded to bf16 (to nearest, ties to even, as bf16_from_f32), lo in the low half.
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
    uint32_t r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));  // the first source goes high
    return r;
}

#else  // the emulated warp

// c += a b: every lane posts its fragments, then computes its four outputs from the whole matrices.
inline void mma_bf16(FragC& c, const FragA& a, const FragB& b) {
    emulation::Warp& w = emulation::my_warp();
    const int lane = static_cast<int>(threadIdx.x % 32), g = lane / 4, t = lane % 4;
    for (int i = 0; i < 4; ++i) w.words[lane][i] = a.x[i];
    w.words[lane][4] = b.x[0];
    w.words[lane][5] = b.x[1];
    w.barrier.arrive_and_wait();
    float A[16][16], B[16][8];
    for (int L = 0; L < 32; ++L) {
        const int gl = L / 4, tl = L % 4;
        const uint32_t* x = w.words[L];
        for (int half = 0; half < 2; ++half) {  // the low and high bf16 of each register
            auto value = [&](uint32_t word) { return unpack_bf16(word, half); };
            A[gl][2 * tl + half] = value(x[0]);
            A[gl + 8][2 * tl + half] = value(x[1]);
            A[gl][2 * tl + 8 + half] = value(x[2]);
            A[gl + 8][2 * tl + 8 + half] = value(x[3]);
            B[2 * tl + half][gl] = value(x[4]);
            B[2 * tl + 8 + half][gl] = value(x[5]);
        }
    }
    w.barrier.arrive_and_wait();
    for (int e = 0; e < 4; ++e) {
        const int row = g + (e >> 1) * 8, col = 2 * t + (e & 1);
        float sum = 0.0f;
        for (int k = 0; k < 16; ++k) sum += A[row][k] * B[k][col];
        c.x[e] += sum;
    }
}

inline uint32_t pack_bf16x2(float lo, float hi) {
    return static_cast<uint32_t>(bf16_from_f32(lo).bits) |
           (static_cast<uint32_t>(bf16_from_f32(hi).bits) << 16);
}

#endif

// The A fragment made of two C tiles side by side (see the header comment).
__device__ __forceinline__ FragA pack_a(const FragC& left, const FragC& right) {
    return FragA{{pack_bf16x2(left.x[0], left.x[1]), pack_bf16x2(left.x[2], left.x[3]),
                  pack_bf16x2(right.x[0], right.x[1]), pack_bf16x2(right.x[2], right.x[3])}};
}

// Two adjacent bf16 (4-byte aligned) as one register.
__device__ __forceinline__ uint32_t load_pair(const uint16_t* p) {
    return *reinterpret_cast<const uint32_t*>(p);
}

// Four 8 x 8 bf16 matrices from shared memory: lane L gives the address of row L % 8 of matrix L / 8
// (16-byte aligned). Plain: register m of lane (g, t) receives elements [g][2t] and [g][2t + 1] of matrix m,
// so with rows = the n of an (n, k) tile (k contiguous), the matrices at k and k + 8 are a B fragment.
// Transposed: elements [2t][g] and [2t + 1][g], so with rows = the k of a (k, n) tile, the same.
#if !defined(__CUDACC__)
template <bool kTransposed>
void ldmatrix_x4(uint32_t (&r)[4], const uint16_t* row) {
    emulation::Warp& w = emulation::my_warp();
    const int lane = static_cast<int>(threadIdx.x % 32), g = lane / 4, t = lane % 4;
    w.pointers[lane] = row;
    w.barrier.arrive_and_wait();
    auto at = [&](int m, int i, int j) {
        return static_cast<uint32_t>(static_cast<const uint16_t*>(w.pointers[8 * m + i])[j]);
    };
    for (int m = 0; m < 4; ++m)
        r[m] = kTransposed ? at(m, 2 * t, g) | at(m, 2 * t + 1, g) << 16
                           : at(m, g, 2 * t) | at(m, g, 2 * t + 1) << 16;
    w.barrier.arrive_and_wait();
}
#else
template <bool kTransposed>
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const uint16_t* row) {
    const uint32_t address = static_cast<uint32_t>(__cvta_generic_to_shared(row));
    if constexpr (kTransposed)
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(address));
    else
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(address));
}
#endif

}  // namespace aclip::cuda
