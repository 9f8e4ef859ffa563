// test_cuda_host.cpp: the host-side logic of the CUDA backend, checked on the CPU: launch arithmetic,
// the dim collapsing of the pointwise kernels, the row-major to cuBLASLt translation of matrix products
// (a plan is executed by a reference column-major loop and compared with the row-major product), and
// the errors a user gets when asking for a CUDA tensor where there is none.
#include <doctest/doctest.h>

#include <cstdlib>
#include <vector>

#include "engine/core/storage.h"
#include "engine/cpu/strided_loop.h"
#include "engine/cuda/cuda_ops.h"
#include "engine/cuda/gemm_plan.h"
#include "engine/cuda/kernel_profile.h"
#include "engine/cuda/launch.h"
#include "engine/ops/ops.h"

namespace aclip {

namespace {

// Runs a plan the way cuBLASLt defines it: d (m, n) = op(a) op(b), column-major, element (r, c) of a
// stored matrix at r + c * ld.
void execute_plan(const cuda::GemmPlan& p, const float* a, const float* b, float* d) {
    auto at = [](const cuda::LtMatrix& m, const float* base, int64_t r, int64_t c) {
        return m.transpose ? base[c + r * m.ld] : base[r + c * m.ld];
    };
    for (int64_t bi = 0; bi < p.batch; ++bi)
        for (int64_t r = 0; r < p.m; ++r)
            for (int64_t c = 0; c < p.n; ++c) {
                double s = 0;
                for (int64_t k = 0; k < p.k; ++k)
                    s += at(p.a, a + bi * p.a.batch_stride, r, k) * at(p.b, b + bi * p.b.batch_stride, k, c);
                d[bi * p.d.batch_stride + r + c * p.d.ld] = static_cast<float>(s);
            }
}

}  // namespace

TEST_SUITE("cuda") {
    TEST_CASE("launch: grid sizes cover the work, at least one block, capped") {
        CHECK(cuda::grid_for(0, 256) == 1);
        CHECK(cuda::grid_for(1, 256) == 1);
        CHECK(cuda::grid_for(257, 256) == 2);
        CHECK(cuda::grid_for(int64_t(1) << 40, 256) == 132 * 16);
    }

    TEST_CASE("launch: column sums cut rows into chunks that fill the GPU, each of at least 32 rows") {
        CHECK(cuda::column_chunks(3, 50432) == 342);   // a bias gradient of 768 bf16 columns: 1,026 blocks
        CHECK(cuda::column_chunks(3, 320) == 10);      // few rows: chunks of 32
        CHECK(cuda::column_chunks(3, 31) == 1);        // fewer than 32 rows: one chunk
        CHECK(cuda::column_chunks(2048, 50432) == 1);  // the columns alone fill the GPU
        CHECK(cuda::column_chunks(1, 0) == 1);         // an empty sum still has its one chunk (zeros)
    }

    TEST_CASE("launch: a warp holds a row in the fewest packs a lane of 1, 2, 3, 4, 6, 8, else slices") {
        CHECK(cuda::packs_for_row(768, 8) == 3);  // ViT-B/16's width in bf16: 24 values a lane
        CHECK(cuda::packs_for_row(768, 4) == 6);  // in f32
        CHECK(cuda::packs_for_row(512, 8) == 2);  // the text tower's
        CHECK(cuda::packs_for_row(640, 4) == 6);  // 5 packs a lane take 6
        CHECK(cuda::packs_for_row(1, 4) == 1);
        CHECK(cuda::packs_for_row(1024, 4) == 8);
        CHECK(cuda::packs_for_row(1028, 4) == 8);  // past 8 packs a lane: slices of 1024
        CHECK(cuda::packs_for_row(45, 1) == 2);
    }

    TEST_CASE("kernel profile: each launch is charged from the end of the one before, summed by name") {
        // a ends at 1 ms, b at 1.5, a again at 4 (2.5 ms: its run and any wait for the host), c at 4 (0 ms).
        const auto rows = cuda::summarize_timeline({"a", "b", "a", "c"}, {1.0, 1.5, 4.0, 4.0});
        REQUIRE(rows.size() == 3);
        CHECK(rows[0].name == "a");
        CHECK(rows[0].calls == 2);
        CHECK(rows[0].ms == doctest::Approx(3.5));
        CHECK(rows[1].name == "b");
        CHECK(rows[1].ms == doctest::Approx(0.5));
        CHECK(rows[2].name == "c");
        CHECK(rows[2].calls == 1);
        CHECK(rows[2].ms == 0.0);
        CHECK(cuda::summarize_timeline({}, {}).empty());
    }

    TEST_CASE("kernel profile: the time the GPU waited for the host is its own row") {
        // a: queued at 0, ends at 1. b: queued at 3 (the host busy until then), ends at 3.5: the GPU
        // idled from 1 to 3. c: queued at 3.2 while b ran, ends at 5: no idle. a again: queued at 4.
        const auto rows =
            cuda::summarize_timeline({"a", "b", "c", "a"}, {1.0, 3.5, 5.0, 5.5}, {0.0, 3.0, 3.2, 4.0});
        auto row = [&](const std::string& name) {
            for (const cuda::ProfileRow& r : rows)
                if (r.name == name) return r;
            return cuda::ProfileRow{};
        };
        const std::string wait_b = std::string(cuda::kHostWaitRow) + "b";
        CHECK(rows[0].name == wait_b);
        CHECK(row(wait_b).ms == doctest::Approx(2.0));
        CHECK(row(wait_b).calls == 1);
        CHECK(rows.size() == 4);  // a, b, c and the wait before b
        CHECK(row("a").ms == doctest::Approx(1.5));
        CHECK(row("b").ms == doctest::Approx(0.5));
        CHECK(row("c").ms == doctest::Approx(1.5));
        double total = 0;
        for (const cuda::ProfileRow& r : rows) total += r.ms;
        CHECK(total == doctest::Approx(5.5));  // the timeline is split, never stretched
    }

    TEST_CASE("launch: a Divider's multiply and shift divide every index below 2^31 exactly") {
        std::vector<uint32_t> divisors;
        for (uint32_t d = 1; d <= 1024; ++d) divisors.push_back(d);
        for (uint32_t d : {197u, 224u * 224u, 65535u, 65536u, 65537u, 1000003u, (1u << 30) - 1, 1u << 30,
                           (1u << 30) + 1, (1u << 31) - 1, 1u << 31})
            divisors.push_back(d);
        uint64_t state = 12345;  // a 64-bit LCG for the numerators between the boundary ones
        for (uint32_t d : divisors) {
            const cuda::Divider v = cuda::divider_for(d);
            std::vector<uint32_t> numerators{0, 1, (1u << 31) - 1, (1u << 31) - 2};
            for (uint32_t k : {1u, 2u, 3u, 1000u})
                if (uint64_t(k) * d < (1u << 31)) {
                    numerators.push_back(k * d - 1);
                    numerators.push_back(k * d);
                    if (uint64_t(k) * d + 1 < (1u << 31)) numerators.push_back(k * d + 1);
                }
            for (int i = 0; i < 200; ++i) {
                state = state * 6364136223846793005ull + 1442695040888963407ull;
                numerators.push_back(static_cast<uint32_t>(state >> 33));  // below 2^31
            }
            for (uint32_t n : numerators) {
                if (cuda::divide(n, v) == n / d) continue;
                FAIL_CHECK("divide(", n, ", divider_for(", d, ")) = ", cuda::divide(n, v), ", not ", n / d);
            }
        }
        CHECK_THROWS_AS(cuda::divider_for(0), Error);
    }

    TEST_CASE("launch: collapse_dims merges dims contiguous in every operand, drops size-1 dims") {
        Shape shape{4, 1, 3, 5};
        Strides out = contiguous_strides(shape);            // 15 15 5 1
        Strides bias = broadcast_strides({5}, {1}, shape);  // 0 0 0 1
        const Strides* two[2] = {&out, &out};
        cuda::CollapsedDims c = cuda::collapse_dims(shape, two, 2);
        CHECK(c.ndim == 1);
        CHECK(c.shape[0] == 60);
        const Strides* with_bias[2] = {&out, &bias};
        c = cuda::collapse_dims(shape, with_bias, 2);
        CHECK(c.ndim == 2);  // (12, 5): the bias repeats every 5
        CHECK(c.shape[0] == 12);
        CHECK(c.shape[1] == 5);
        CHECK(c.strides[1][0] == 0);
        CHECK(c.strides[1][1] == 1);
        CHECK(c.index32);  // 60 elements: 32-bit indices, by the dims' Dividers
        CHECK(cuda::divide(59, c.divider[1]) == 11);
        Shape big{1 << 16, 1 << 15};  // 2^31 elements: 64-bit indices
        Strides big_strides = contiguous_strides(big), big_bias = broadcast_strides({1 << 15}, {1}, big);
        const Strides* big_two[2] = {&big_strides, &big_bias};
        CHECK(!cuda::collapse_dims(big, big_two, 2).index32);
        Shape too_many(9, 2);
        Strides s9 = contiguous_strides(too_many);
        const Strides* one[1] = {&s9};
        CHECK_THROWS_AS(cuda::collapse_dims(too_many, one, 1), Error);
    }

    TEST_CASE("gemm plan: every transpose combination and a broadcast batch match the row-major product") {
        const int64_t B = 3, M = 5, N = 4, K = 7;
        for (bool ta : {false, true})
            for (bool tb : {false, true})
                for (bool broadcast_b : {false, true}) {
                    CAPTURE(ta);
                    CAPTURE(tb);
                    CAPTURE(broadcast_b);
                    // Row-major values A[b][i][k], B[b][k][j], stored as the flags say, with padding in ld.
                    const int64_t lda = (ta ? M : K) + 2, ldb = (tb ? K : N) + 1;
                    const int64_t sa = (ta ? K : M) * lda, sb = (tb ? N : K) * ldb;
                    std::vector<float> a(B * sa, 0.f), b(B * sb, 0.f);
                    auto A = [](int64_t bi, int64_t i, int64_t k) {
                        return float(bi + 1) * 0.5f + i - 0.25f * k;
                    };
                    auto Bv = [&](int64_t bi, int64_t k, int64_t j) {
                        return (broadcast_b ? 0.f : float(bi)) + 0.5f * k * j - j + 1.f;
                    };
                    for (int64_t bi = 0; bi < B; ++bi) {
                        for (int64_t i = 0; i < M; ++i)
                            for (int64_t k = 0; k < K; ++k)
                                a[bi * sa + (ta ? k * lda + i : i * lda + k)] = A(bi, i, k);
                        for (int64_t k = 0; k < K; ++k)
                            for (int64_t j = 0; j < N; ++j)
                                b[bi * sb + (tb ? j * ldb + k : k * ldb + j)] = Bv(bi, k, j);
                    }
                    cuda::GemmPlan p =
                        cuda::plan_gemm({ta, lda, sa}, {tb, ldb, broadcast_b ? 0 : sb}, B, M, N, K);
                    std::vector<float> d(B * M * N, -1.f);
                    execute_plan(p, b.data(), a.data(), d.data());  // cuBLASLt's A is our b, its B our a
                    for (int64_t bi = 0; bi < B; ++bi)
                        for (int64_t i = 0; i < M; ++i)
                            for (int64_t j = 0; j < N; ++j) {
                                double ref = 0;
                                for (int64_t k = 0; k < K; ++k)
                                    ref += A(bi, i, k) * Bv(broadcast_b ? 0 : bi, k, j);
                                REQUIRE(d[bi * M * N + i * N + j] == doctest::Approx(ref).epsilon(1e-6));
                            }
                }
    }

    TEST_CASE(
        "gemm plan: operand alignment, part of a cached plan's identity, is the largest power of two <= "
        "256") {
        alignas(256) static char buffer[1024];
        CHECK(cuda::address_alignment(buffer) == 256);
        CHECK(cuda::address_alignment(buffer + 2) == 2);
        CHECK(cuda::address_alignment(buffer + 48) == 16);
        CHECK(cuda::address_alignment(buffer + 512) == 256);
        CHECK(cuda::address_alignment(buffer + 1) == 1);
    }

    TEST_CASE("a CUDA tensor without a GPU is a clear error, never a crash") {
        if (cuda_device_count() > 0) return;  // this machine has a GPU: the parity suite covers it
        try {
            Tensor t = empty({2, 3}, DType::F32, Device::CUDA);
            FAIL("expected an error");
        } catch (const Error& e) {
            std::string msg = e.what();
            CHECK(msg.find("cannot allocate a CUDA tensor") != std::string::npos);
            CHECK(msg.find("HINT") != std::string::npos);
        }
        CHECK_THROWS_AS(ones({2}).to(Device::CUDA), Error);
    }

    TEST_CASE("ACLIP_TENSOR_CORE_ATTENTION=0 turns the tensor-core attention off, read at each call") {
        unsetenv("ACLIP_TENSOR_CORE_ATTENTION");
        CHECK(cuda::tensor_core_attention() == cuda_backend_built());  // on wherever the kernels are built
        setenv("ACLIP_TENSOR_CORE_ATTENTION", "0", 1);
        CHECK_FALSE(cuda::tensor_core_attention());
        setenv("ACLIP_TENSOR_CORE_ATTENTION", "1", 1);
        CHECK(cuda::tensor_core_attention() == cuda_backend_built());
        unsetenv("ACLIP_TENSOR_CORE_ATTENTION");
    }

    TEST_CASE("ACLIP_BIAS_GRADIENT_EPILOGUE=0 turns the bias-gradient epilogue off, read at each call") {
        unsetenv("ACLIP_BIAS_GRADIENT_EPILOGUE");
        CHECK(cuda::bias_gradient_epilogue() == cuda_backend_built());
        setenv("ACLIP_BIAS_GRADIENT_EPILOGUE", "0", 1);
        CHECK_FALSE(cuda::bias_gradient_epilogue());
        setenv("ACLIP_BIAS_GRADIENT_EPILOGUE", "1", 1);
        CHECK(cuda::bias_gradient_epilogue() == cuda_backend_built());
        unsetenv("ACLIP_BIAS_GRADIENT_EPILOGUE");
    }

    TEST_CASE("empty_pinned without a GPU is an ordinary CPU tensor") {
        if (cuda_device_count() > 0) return;  // with a GPU: the cuda tier's pinned test
        Tensor t = empty_pinned({4, 5}, DType::U8);
        CHECK(t.device() == Device::CPU);
        CHECK_FALSE(t.is_pinned());
        t.fill_(7.0);
        CHECK(t.to_vector<uint8_t>() == std::vector<uint8_t>(20, 7));
    }
}

}  // namespace aclip
