// lane_sum.h: sums over a row that add in the same order at any vector width.
// A loop written `#pragma omp simd reduction(+ : s)` adds in whatever order the vectors the compiler picks
// imply: 4 partial sums with SSE, 16 with AVX-512, so the same source built for another CPU rounds
// differently. Here term i always goes to lane i % kSumLanes (the tail too), and the lanes are combined by
// one fixed tree, so a file compiled for this machine's widest vectors (-march=native, CMakeLists.txt)
// computes the very bits of the portable build, only faster.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>

namespace aclip {

constexpr int64_t kSumLanes = 16;  // one AVX-512 vector of floats; 2 AVX2 or 4 SSE vectors

// The K sums of term(i) = {t_0, ..., t_K-1} for i in [0, n), with `Acc` the accumulator type, each in the
// order above. term may have side effects (softmax stores each exponential as it adds it); it is called
// once per i, in no particular order.
template <class Acc, size_t K, class Term>
inline std::array<Acc, K> lane_sums(int64_t n, Term&& term) {
    Acc lanes[K][kSumLanes] = {};
    auto add = [&](int64_t j, int64_t i) {
        const std::array<Acc, K> t = term(i);
        for (size_t k = 0; k < K; ++k) lanes[k][j] += t[k];
    };
    int64_t i = 0;
    for (; i + kSumLanes <= n; i += kSumLanes) {
#pragma omp simd
        for (int64_t j = 0; j < kSumLanes; ++j) add(j, i + j);
    }
    for (int64_t j = 0; i + j < n; ++j) add(j, i + j);
    std::array<Acc, K> sums;
    for (size_t k = 0; k < K; ++k) {
        for (int64_t half = kSumLanes / 2; half > 0; half /= 2) {
#pragma omp simd
            for (int64_t j = 0; j < half; ++j) lanes[k][j] += lanes[k][j + half];
        }
        sums[k] = lanes[k][0];
    }
    return sums;
}

// The one sum of term(i) (returning Acc) for i in [0, n).
template <class Acc, class Term>
inline Acc lane_sum(int64_t n, Term&& term) {
    return lane_sums<Acc, 1>(n, [&](int64_t i) { return std::array<Acc, 1>{term(i)}; })[0];
}

}  // namespace aclip
