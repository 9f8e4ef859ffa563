// test_index_add_emulated.cpp: the ordered index_add of engine/cuda/index_add.cuh (the backward of
// embedding and gather_rows on the GPU), compiled for the CPU and run on emulated threads
// (engine/cuda/warp_emulation.h): with repeated indices, a large bucket (padding tokens), batched index
// rows and a destination that already holds values, every destination value must be the CPU op's, bit
// for bit: its source rows added one at a time in their order, each sum rounded to the dtype. An index out
// of range is skipped and recorded as the fault.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

#include "engine/cuda/index_add.cuh"  // first: it brings the emulation's stand-ins for CUDA's keywords
#include "engine/math/bf16.h"
#include "test_util.h"

namespace aclip {

namespace {

float as_float(float v) {
    return v;
}
float as_float(bf16 v) {
    return bf16_to_f32(v);
}
template <class T>
T from_float(float v) {
    if constexpr (std::is_same_v<T, bf16>)
        return bf16_from_f32(v);
    else
        return v;
}

// dst (O, S, I) += src (O, L, I) at index (L shared, or (O, L) when batched), through the five kernels on
// emulated blocks of 64 threads (grids of 3 blocks, so the grid-stride loops wrap; order_buckets in tiles
// of kTile), against the CPU's loop.
template <class T>
void check_index_add(int64_t O, int64_t S, int64_t I, const std::vector<int64_t>& index, bool batched,
                     const std::vector<int64_t>& bad_positions = {}) {
    CAPTURE(O);
    CAPTURE(S);
    CAPTURE(I);
    CAPTURE(batched);
    const int64_t L = batched ? static_cast<int64_t>(index.size()) / O : static_cast<int64_t>(index.size());
    const int64_t n = O * L, K = O * S;
    const std::vector<float> src_f = test::random_tensor({n, I}, 3, -1, 1).to_vector<float>();
    const std::vector<float> dst_f = test::random_tensor({K, I}, 4, -1, 1).to_vector<float>();
    std::vector<T> src, dst;
    for (float v : src_f) src.push_back(from_float<T>(v));
    for (float v : dst_f) dst.push_back(from_float<T>(v));
    std::vector<T> expected = dst;  // the CPU op: rows in order, each add rounded to T
    for (int64_t p = 0; p < n; ++p) {
        const int64_t o = p / L, row = index[static_cast<size_t>((batched ? o * L : 0) + p % L)];
        if (row < 0 || row >= S) continue;
        for (int64_t i = 0; i < I; ++i) {
            T& d = expected[static_cast<size_t>((o * S + row) * I + i)];
            d = from_float<T>(as_float(d) + as_float(src[static_cast<size_t>(p * I + i)]));
        }
    }

    cuda::IndexFault fault{};
    const cuda::RowIndex r{index.data(), batched ? L : 0, &fault, "index_add"};
    std::vector<int> count(static_cast<size_t>(K), 0), filled(static_cast<size_t>(K), 0),
        start(static_cast<size_t>(K), -1), order(static_cast<size_t>(n), -1),
        sorted(static_cast<size_t>(n), -1);
    using namespace cuda::index_add_kernels;
    auto launch = [](const std::function<void()>& kernel) { cuda::emulate_launch(3, 1, 64, kernel); };
    launch([&] { count_rows(r, count.data(), n, L, S); });
    cuda::emulate_launch(1, 1, kScanThreads, [&] { scan_counts(count.data(), start.data(), K); });
    launch([&] { place_rows(r, start.data(), filled.data(), order.data(), n, L, S); });
    cuda::emulate_launch(static_cast<unsigned>((n + kTile - 1) / kTile), 1, kTile, [&] {
        order_buckets(r, start.data(), count.data(), order.data(), sorted.data(), n, L, S);
    });
    launch([&] { add_buckets<T>(dst.data(), src.data(), start.data(), count.data(), sorted.data(), K, I); });

    int64_t placed = 0;
    for (int64_t k = 0; k < K; ++k) {
        REQUIRE(start[static_cast<size_t>(k)] == placed);  // the exclusive prefix sums of the counts
        placed += count[static_cast<size_t>(k)];
    }
    CHECK(placed == n - static_cast<int64_t>(bad_positions.size()) * (batched ? 1 : O));
    for (int64_t k = 0; k < K; ++k)  // each bucket's rows ascending
        for (int j = 1; j < count[static_cast<size_t>(k)]; ++j)
            REQUIRE(sorted[static_cast<size_t>(start[static_cast<size_t>(k)] + j - 1)] <
                    sorted[static_cast<size_t>(start[static_cast<size_t>(k)] + j)]);
    for (size_t q = 0; q < dst.size(); ++q) {
        CAPTURE(q);
        REQUIRE(as_float(dst[q]) == as_float(expected[q]));  // bit for bit (no NaN here)
    }
    if (bad_positions.empty()) {
        CHECK(fault.op == 0);
    } else {
        CHECK(reinterpret_cast<const char*>(fault.op) == r.op);
        CHECK(fault.limit == S);
        bool listed = false;
        for (int64_t at : bad_positions) listed |= fault.position == at;
        CHECK(listed);
    }
}

// n indices in [0, S), a fraction `pad` of them the value 0 (padding tokens), the rest random.
std::vector<int64_t> token_like(int64_t n, int64_t S, double pad, uint64_t seed) {
    std::vector<float> u = test::random_tensor({n, 2}, seed, 0, 1).to_vector<float>();
    std::vector<int64_t> index(static_cast<size_t>(n));
    for (int64_t p = 0; p < n; ++p)
        index[static_cast<size_t>(p)] =
            u[static_cast<size_t>(2 * p)] < pad
                ? 0
                : std::min<int64_t>(S - 1, static_cast<int64_t>(u[static_cast<size_t>(2 * p + 1)] * S));
    return index;
}

}  // namespace

TEST_SUITE("cuda") {
    TEST_CASE("index_add on emulated threads: each row's sources added in order, bit for bit the CPU's") {
        check_index_add<float>(1, 50, 7, token_like(300, 50, 0.7, 11), false);  // embedding: a bucket of ~210
        check_index_add<bf16>(1, 50, 7, token_like(300, 50, 0.7, 12), false);   // each add rounded to bf16
        check_index_add<float>(1, 40, 3, token_like(700, 40, 0.8, 17), false);  // three tiles, a partial one
        std::vector<int64_t> two_long(600);  // two buckets of 300 in every tile: both counted by the block
        for (size_t p = 0; p < two_long.size(); ++p) two_long[p] = static_cast<int64_t>(p % 2) * 3;
        check_index_add<bf16>(1, 5, 33, two_long, false);
        std::vector<int64_t> whole_chunks(
            160);  // a bucket of 128 rows: add_buckets' two whole chunks, no rest
        for (size_t p = 0; p < whole_chunks.size(); ++p) whole_chunks[p] = p % 5 == 4 ? 1 + p % 3 : 0;
        check_index_add<float>(1, 4, 3, whole_chunks, false);
        check_index_add<float>(3, 9, 5, token_like(12, 9, 0.3, 13), false);  // an index shared by 3 rows
        check_index_add<float>(4, 9, 3, token_like(24, 9, 0.0, 14), true);   // batched: a row per o
        check_index_add<float>(1, 6, 1, {2}, false);                         // one row, one value
        check_index_add<float>(2, 5000, 2, token_like(20, 5000, 0.0, 15), false);  // K > the scan's threads
        std::vector<int64_t> bad = token_like(40, 8, 0.5, 16);
        bad[17] = 8;  // out of range: skipped, recorded
        check_index_add<float>(1, 8, 4, bad, false, {17});
    }
}

}  // namespace aclip
