// test_mma_emulated.cpp: the tensor-core flash attention kernels (engine/cuda/attention_mma.cuh), compiled
// for the CPU and run on emulated warps (engine/cuda/warp_emulation.h), against the engine's composed
// attention with autograd. This checks, on any machine, what a GPU run would otherwise be the first to
// see: the kernels' fragment indexing, the masks (key padding, causal, rows past the end), the online
// softmax and its log-sum-exp, and the three products of the backward. The fragment layouts themselves are
// the emulation's assumption (mma.cuh); the GPU parity case checks them.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "engine/cuda/attention_mma.cuh"  // first: it brings the emulation's stand-ins for CUDA's keywords
#include "engine/math/bf16.h"
#include "engine/ops/ops.h"
#include "test_util.h"

namespace aclip {

namespace {

using Bits = std::vector<uint16_t>;

Bits to_bits(const Tensor& t) {  // an f32 tensor holding bf16 values -> their bit patterns
    Bits out;
    for (float v : t.to_vector<float>()) out.push_back(bf16_from_f32(v).bits);
    return out;
}

Tensor from_bits(const Bits& b, const Shape& shape) {
    std::vector<float> v;
    for (uint16_t x : b) v.push_back(bf16_to_f32(bf16{x}));
    return from_vector(v, shape);
}

double relative_error(const Tensor& actual, const Tensor& expected) {
    const std::vector<double> a = actual.to_vector<double>(), e = expected.to_vector<double>();
    double diff = 0, norm = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        diff += (a[i] - e[i]) * (a[i] - e[i]);
        norm += e[i] * e[i];
    }
    return std::sqrt(diff / std::max(norm, 1e-30));
}

template <int D>
void check_attention(int64_t Tq, int64_t Tk, bool causal) {
    CAPTURE(D);
    CAPTURE(Tq);
    CAPTURE(Tk);
    CAPTURE(causal);
    const int64_t H = 2;  // (1, H, T, D): two heads, so the kernels' per-head offsets are exercised
    auto bf16_values = [](const Shape& s, uint64_t seed) {  // inputs that bf16 holds exactly
        return from_bits(to_bits(test::random_tensor(s, seed, -2, 2, DType::F32)), s);
    };
    const Tensor q = bf16_values({1, H, Tq, D}, 1), k = bf16_values({1, H, Tk, D}, 2),
                 v = bf16_values({1, H, Tk, D}, 3), go = bf16_values({1, H, Tq, D}, 4);
    const Bits qb = to_bits(q), kb = to_bits(k), vb = to_bits(v), gb = to_bits(go);
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
    using namespace cuda::flash_mma;
    const unsigned q_blocks = static_cast<unsigned>((Tq + kTileRows - 1) / kTileRows),
                   k_blocks = static_cast<unsigned>((Tk + kTileRows - 1) / kTileRows);

    Bits out(qb.size()), dq(qb.size()), dk(kb.size()), dv(vb.size());
    std::vector<float> lse(static_cast<size_t>(H * Tq)), delta(lse.size());
    cuda::emulate_launch(q_blocks, H, kThreads, [&] {
        forward_kernel<D>(qb.data(), kb.data(), vb.data(), out.data(), lse.data(), Tq, Tk, scale * kLog2e,
                          causal);
    });
    const Tensor out_t = from_bits(out, {1, H, Tq, D});
    for (int64_t i = 0; i < H * Tq; ++i) {  // what flash_delta_kernel computes: the rows of dO * O
        float s = 0;
        for (int64_t d = 0; d < D; ++d)
            s += bf16_to_f32(bf16{out[static_cast<size_t>(i * D + d)]}) *
                 bf16_to_f32(bf16{gb[static_cast<size_t>(i * D + d)]});
        delta[static_cast<size_t>(i)] = s;
    }
    cuda::emulate_launch(k_blocks, H, kThreads, [&] {
        backward_kv_kernel<D>(qb.data(), kb.data(), vb.data(), gb.data(), lse.data(), delta.data(), dk.data(),
                              dv.data(), Tq, Tk, scale * kLog2e, scale, causal);
    });
    cuda::emulate_launch(q_blocks, H, kThreads, [&] {
        backward_q_kernel<D>(qb.data(), kb.data(), vb.data(), gb.data(), lse.data(), delta.data(), dq.data(),
                             Tq, Tk, scale * kLog2e, scale, causal);
    });

    // The reference: the composed attention in f32 on the same bf16 values, and autograd.
    const Tensor qr = q.detach().requires_grad_(), kr = k.detach().requires_grad_(),
                 vr = v.detach().requires_grad_();
    const Tensor expected = scaled_dot_product_attention(qr, kr, vr, causal).out;
    sum(mul(expected, go)).backward();
    // Probabilities and outputs are rounded to bf16 (2^-9 relative each) before and after the second
    // product, dS and the gradients likewise: a few bf16 roundings, norm-relative.
    CHECK(relative_error(out_t, expected.detach()) < 1e-2);
    CHECK(relative_error(from_bits(dq, q.shape()), qr.grad()) < 2e-2);
    CHECK(relative_error(from_bits(dk, k.shape()), kr.grad()) < 2e-2);
    CHECK(relative_error(from_bits(dv, v.shape()), vr.grad()) < 2e-2);
    // The log-sum-exp of every row, in f32 from f32 scores: f32 rounding only.
    const std::vector<float> qs = q.to_vector<float>(), ks = k.to_vector<float>();
    for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < Tq; ++i) {
            double m = -INFINITY, total = 0;
            std::vector<double> s;
            for (int64_t j = 0; j < Tk && (!causal || j <= i); ++j) {
                double dot = 0;
                for (int64_t d = 0; d < D; ++d)
                    dot += qs[static_cast<size_t>((h * Tq + i) * D + d)] *
                           ks[static_cast<size_t>((h * Tk + j) * D + d)];
                s.push_back(dot * scale);
                m = std::max(m, s.back());
            }
            for (double x : s) total += std::exp(x - m);
            REQUIRE(std::abs(lse[static_cast<size_t>(h * Tq + i)] - (m + std::log(total))) < 1e-4);
        }
}

}  // namespace

TEST_SUITE("cuda") {
    TEST_CASE("tensor-core flash attention on emulated warps equals the composed attention") {
        // Partial tiles (37 queries, 41 keys), whole ones (64), several tiles each way (70 queries of 3
        // keys; 3 queries of 130 keys), causal and not.
        for (bool causal : {false, true}) {
            check_attention<32>(37, 41, causal);
            check_attention<64>(37, 41, causal);
            check_attention<64>(64, 64, causal);
            check_attention<64>(70, 3, causal);
            check_attention<32>(3, 130, causal);
        }
    }
}

}  // namespace aclip
