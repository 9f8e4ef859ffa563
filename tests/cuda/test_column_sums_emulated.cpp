// test_column_sums_emulated.cpp: the column sums of engine/cuda/column_sums.cuh (bias gradients, LayerNorm's
// weight and bias gradients, sums over a middle dim), compiled for the CPU and run on emulated threads
// (engine/cuda/warp_emulation.h) against sums in double: every column summed over every row of every
// chunk, with partial blocks of columns, chunks of unequal length, 16-byte packs and single columns, then
// the chunks added (add_chunks).
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "engine/cuda/column_sums.cuh"  // first: it brings the emulation's stand-ins for CUDA's keywords
#include "engine/cuda/launch.h"
#include "test_util.h"

namespace aclip {

namespace {

// Two sums per column of a (R, n) matrix x, as the LayerNorm kernel takes them: of x and of x * w[row],
// over `chunks` chunks of rows, V columns a lane. With one chunk the sums land in the outputs; with
// several, each chunk's in its own partial row, which add_chunks then adds into the outputs (the second
// output null: skipped, as LayerNorm skips a missing bias gradient).
template <int V>
void check_column_sums(int64_t R, int64_t n, int64_t chunks) {
    CAPTURE(V);
    CAPTURE(R);
    CAPTURE(n);
    CAPTURE(chunks);
    const std::vector<float> x = test::random_tensor({R, n}, 7, -1, 1).to_vector<float>();
    const std::vector<float> w = test::random_tensor({R}, 8, -1, 1).to_vector<float>();
    std::vector<float> partial(static_cast<size_t>(2 * chunks * n), NAN), plain(static_cast<size_t>(n), NAN);
    float* const outs[2] = {plain.data(), nullptr};
    const unsigned blocks = static_cast<unsigned>((n + 32 * V - 1) / (32 * V));
    cuda::emulate_launch(blocks, static_cast<unsigned>(chunks), cuda::columns::kThreads, [&] {
        cuda::columns::chunk_sums<2, V>(
            n, R, chunks,
            [&](int64_t p, int64_t r0, int64_t r_end, float(&acc)[2][V]) {
                CHECK(p % V == 0);  // CHECK: a REQUIRE would throw out of an emulated thread
                CHECK(p + V <= n);
                for (int64_t r = r0; r < r_end; r += cuda::columns::kWarps)
                    for (int v = 0; v < V; ++v) {
                        const float value = x[static_cast<size_t>(r * n + p + v)];
                        acc[0][v] += value;
                        acc[1][v] += value * w[static_cast<size_t>(r)];
                    }
            },
            outs, partial.data());
    });
    // The sums of rows [r0, r1) of column j in double.
    auto sums = [&](int64_t j, int64_t r0, int64_t r1) {
        double p = 0, q = 0;
        for (int64_t r = r0; r < r1; ++r) {
            p += x[static_cast<size_t>(r * n + j)];
            q += static_cast<double>(x[static_cast<size_t>(r * n + j)]) * w[static_cast<size_t>(r)];
        }
        return std::pair{p, q};
    };
    // f32 sums of at most a few hundred terms in [-1, 1]: well inside 1e-4 absolute. NaN: never written.
    if (chunks > 1) {
        for (int64_t c = 0; c < chunks; ++c)
            for (int64_t j = 0; j < n; ++j) {
                const auto [p, q] = sums(j, c * R / chunks, (c + 1) * R / chunks);
                REQUIRE(std::abs(partial[static_cast<size_t>(c * n + j)] - p) < 1e-4);
                REQUIRE(std::abs(partial[static_cast<size_t>((chunks + c) * n + j)] - q) < 1e-4);
            }
        cuda::emulate_launch(
            static_cast<unsigned>(cuda::columns::add_chunks_blocks(n)), 1, cuda::columns::kThreads,
            [&] { cuda::columns::add_chunks<float>(partial.data(), plain.data(), n, chunks); });
    } else {
        for (float v : partial) REQUIRE(std::isnan(v));  // one chunk: straight into the outputs
    }
    for (int64_t j = 0; j < n; ++j)
        REQUIRE(std::abs(plain[static_cast<size_t>(j)] - sums(j, 0, R).first) < 1e-4);
}

}  // namespace

TEST_SUITE("cuda") {
    TEST_CASE("column sums on emulated threads: every row of every chunk, every column once") {
        check_column_sums<8>(97, 256, 1);   // one whole block of packed columns, rows not a multiple of 8
        check_column_sums<8>(200, 264, 3);  // a second, nearly empty block; chunks of 66 and 67 rows
        check_column_sums<4>(45, 40, 4);    // f32 packs: one partial block
        check_column_sums<1>(33, 45, 2);    // single columns: a full block and a partial one
        check_column_sums<1>(70, 20, 70);   // more chunks than add_chunks' warps take in one pass (64)
        check_column_sums<1>(5, 3, 1);      // fewer rows than warps: idle warps add nothing
        check_column_sums<1>(0, 3, 1);      // no rows: zeros
    }
}

}  // namespace aclip
