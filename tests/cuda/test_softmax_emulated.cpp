// test_softmax_emulated.cpp: the softmax kernels of engine/cuda/softmax.cuh, compiled for the CPU and run on
// emulated threads (engine/cuda/warp_emulation.h) against the CPU's softmax and log_softmax with autograd:
// rows held in registers (by groups of 4 to 32 lanes, K values a lane) and rows looped over (1,100), forward
// and backward, in f32 and bf16, with a partly empty last block of rows. And cross_entropy's summed negative
// log-likelihood, whose kernel checks the targets itself: a bad one is skipped and recorded as an index
// fault (engine/cuda/index_fault.cuh) for the host to raise.
#include <doctest/doctest.h>

#include <algorithm>
#include <vector>

#include "engine/cuda/softmax.cuh"  // first: it brings the emulation's stand-ins for CUDA's keywords
#include "engine/ops/ops.h"
#include "test_util.h"

namespace aclip {

namespace {

using namespace cuda::softmax_kernels;

// x and y start `x_shift` and `y_shift` elements into a buffer (a 16-byte boundary at 0), with guard
// elements on either side that no kernel may write.
template <class T>
void check_softmax(int64_t R, int64_t D, bool log, int64_t x_shift = 0, int64_t y_shift = 0) {
    CAPTURE(sizeof(T));
    CAPTURE(R);
    CAPTURE(D);
    CAPTURE(log);
    CAPTURE(x_shift);
    CAPTURE(y_shift);
    const DType dt = dtype_of<T>::value;
    std::vector<Tensor> buffers;  // each with 8 elements of -7 on either side of its view
    auto shifted = [&](const Tensor& t, int64_t shift) {  // t's values at `shift` elements into a buffer
        Tensor buffer = empty({R * D + shift + 8}, dt);
        buffer.fill_(-7.0);
        Tensor view = buffer.narrow(0, shift, R * D).view({R, D});
        view.copy_(t);
        buffers.push_back(buffer.narrow(0, 0, shift));
        buffers.push_back(buffer.narrow(0, shift + R * D, 8));
        return view;
    };
    const Tensor x = shifted(test::random_tensor({R, D}, 5, -4, 4).to(dt), x_shift),
                 g = test::random_tensor({R, D}, 6).to(dt);
    // The reference in f32 on exactly the values T holds.
    const Tensor xr = x.to(DType::F32).requires_grad_();
    const Tensor yr = log ? log_softmax(xr, -1) : softmax(xr, -1);
    sum(mul(yr, g.to(DType::F32))).backward();

    Tensor y = shifted(zeros({R, D}, dt), y_shift), dx = empty({R, D}, dt);
    const unsigned blocks = static_cast<unsigned>((R + kRowsPerBlock - 1) / kRowsPerBlock);
    const bool cached = dispatch_per_lane(D, [&](auto k, auto lanes) {
        constexpr int K = decltype(k)::value, L = decltype(lanes)::value;
        CAPTURE(L);
        const unsigned group_blocks = static_cast<unsigned>(row_blocks<L>(R));
        cuda::emulate_launch(group_blocks, 1, kThreads, [&] {
            softmax_cached_kernel<K, L, T>(x.data<T>(), y.data<T>(), R, static_cast<int>(D), log);
        });
        cuda::emulate_launch(group_blocks, 1, kThreads, [&] {
            softmax_backward_cached_kernel<K, L, T>(g.data<T>(), y.data<T>(), dx.data<T>(), R,
                                                    static_cast<int>(D), log);
        });
    });
    if (!cached) {
        cuda::emulate_launch(blocks, 1, kThreads,
                             [&] { softmax_kernel<T>(x.data<T>(), y.data<T>(), R, D, log); });
        cuda::emulate_launch(blocks, 1, kThreads, [&] {
            softmax_backward_kernel<T>(g.data<T>(), y.data<T>(), dx.data<T>(), R, D, log);
        });
    }
    CHECK(cached == (D <= 1024));
    for (const Tensor& outside : buffers)  // nothing written past the rows
        CHECK(outside.to_vector<float>() == std::vector<float>(static_cast<size_t>(outside.numel()), -7.0f));
    // f32: expf against the CPU's exp_f32 and sums in another order, a few ulp; bf16: the output and the
    // gradient each rounded to bf16 (2^-9 relative), norm-relative.
    const double tol = sizeof(T) == 2 ? 1e-2 : 1e-5;
    CHECK(test::norm_rel_error(y.to(DType::F32), yr.detach()) < tol);
    CHECK(test::norm_rel_error(dx.to(DType::F32), xr.grad()) < tol);
}

}  // namespace

TEST_SUITE("cuda") {
    TEST_CASE("softmax kernels on emulated threads equal the CPU op, forward and backward") {
        // Rows in registers by groups of 4 lanes (3 and 45 elements: 1 and 16 values a lane, 8 rows a warp),
        // 8 (100), 16 (197, an attention row: 2 rows a warp) and 32 lanes (300, 600); 1100 loops. 13 rows
        // leave the last warp's groups partly past the end.
        for (bool log : {false, true})
            for (int64_t D : {3, 45, 100, 197, 300, 600, 1100}) {
                check_softmax<float>(13, D, log);
                check_softmax<bf16>(13, D, log);
            }
        // Several blocks of rows (16 rows of 197 a block: the last holds 5), x and y off 16-byte boundaries
        // by the same or different amounts: nothing is read or written outside the rows.
        for (auto [xs, ys] : {std::pair<int64_t, int64_t>{0, 0}, {3, 3}, {1, 2}, {0, 5}}) {
            check_softmax<bf16>(37, 197, false, xs, ys);
            check_softmax<float>(37, 197, true, xs, ys);
            check_softmax<float>(70, 45, false, xs, ys);  // 64 rows a block
        }
    }

    TEST_CASE("nll_sum on emulated threads: the targets' sum, bad targets skipped and one of them recorded") {
        const int64_t N = 300, C = 7;  // more rows than the block's threads: a thread checks several
        const Tensor logp = log_softmax(test::random_tensor({N, C}, 9, -3, 3), -1);
        const std::vector<float> lp = logp.to_vector<float>();
        std::vector<int64_t> target(N);
        for (int64_t i = 0; i < N; ++i) target[i] = (i * 5) % C;
        const std::vector<int64_t> bad = {7, -1, 100};  // at positions 17, 150 and 299
        target[17] = bad[0], target[150] = bad[1], target[299] = bad[2];
        double want = 0;
        for (int64_t i = 0; i < N; ++i)
            if (target[i] >= 0 && target[i] < C) want -= lp[i * C + target[i]];
        static const char* kOp = "cross_entropy (its target)";
        for (bool faulty : {false, true}) {
            CAPTURE(faulty);
            std::vector<int64_t> t = target;
            if (!faulty) t[17] = t[150] = t[299] = 0;
            double expect = want;
            if (!faulty)
                for (int64_t i : {17, 150, 299}) expect -= lp[i * C];
            cuda::IndexFault fault{};
            float out = 0;
            cuda::emulate_launch(
                1, 1, 256, [&] { nll_sum_kernel<float>(lp.data(), t.data(), &out, N, C, &fault, kOp); });
            CHECK(out == doctest::Approx(expect).epsilon(1e-5));  // f32 sums of 300 terms in another order
            if (!faulty) {
                CHECK(fault.op == 0u);
                continue;
            }
            REQUIRE(fault.op == reinterpret_cast<unsigned long long>(kOp));  // the host's literal, back
            CHECK(fault.limit == C);
            CHECK(t[fault.position] == fault.index);  // one coherent record: the index at its position
            CHECK(std::find(bad.begin(), bad.end(), fault.index) != bad.end());
        }
    }
}

}  // namespace aclip
