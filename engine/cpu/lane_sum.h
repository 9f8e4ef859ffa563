// lane_sum.h: sums over a row that add in the same order at any vector width.
// A loop written `#pragma omp simd reduction(+ : s)` adds in whatever order the vectors the compiler picks
// imply: 4 partial sums with SSE, 16 with AVX-512, so the same source built for another CPU rounds
// differently. Here term i always goes to lane i % kSumLanes (the tail too), and the lanes are combined by
// one fixed tree, so a file compiled for this machine's widest vectors (-march=native, CMakeLists.txt)
// computes the very bits of the portable build, only faster.
#pragma once
#include <cstdint>
#include <utility>

namespace aclip {

constexpr int64_t kSumLanes = 16;  // one AVX-512 vector of floats; 2 AVX2 or 4 SSE vectors

// Sum of term(i) for i in [0, n), with `Acc` the accumulator type. term may have side effects (softmax
// stores each exponential as it adds it); it is called once per i, in no particular order.
template <class Acc, class Term>
inline Acc lane_sum(int64_t n, Term&& term) {
    Acc lanes[kSumLanes] = {};
    int64_t i = 0;
    for (; i + kSumLanes <= n; i += kSumLanes) {
#pragma omp simd
        for (int64_t j = 0; j < kSumLanes; ++j) lanes[j] += term(i + j);
    }
    for (int64_t j = 0; i + j < n; ++j) lanes[j] += term(i + j);
    for (int64_t half = kSumLanes / 2; half > 0; half /= 2) {
#pragma omp simd
        for (int64_t j = 0; j < half; ++j) lanes[j] += lanes[j + half];
    }
    return lanes[0];
}

// The two sums of term(i) = {a, b} together, in lane_sum's order (layer_norm's backward needs both).
template <class Acc, class Term>
inline std::pair<Acc, Acc> lane_sum2(int64_t n, Term&& term) {
    Acc a[kSumLanes] = {}, b[kSumLanes] = {};
    auto add = [&](int64_t j, int64_t k) {
        const auto [ta, tb] = term(k);
        a[j] += ta;
        b[j] += tb;
    };
    int64_t i = 0;
    for (; i + kSumLanes <= n; i += kSumLanes) {
#pragma omp simd
        for (int64_t j = 0; j < kSumLanes; ++j) add(j, i + j);
    }
    for (int64_t j = 0; i + j < n; ++j) add(j, i + j);
    for (int64_t half = kSumLanes / 2; half > 0; half /= 2) {
#pragma omp simd
        for (int64_t j = 0; j < half; ++j) {
            a[j] += a[j + half];
            b[j] += b[j + half];
        }
    }
    return {a[0], b[0]};
}

}  // namespace aclip
