// test_attention_emulated.cpp: the kernels of engine/cuda/attention.cuh, compiled for the CPU and run on
// emulated threads (engine/cuda/warp_emulation.h): the f32 flash attention (forward with its log-sum-exp,
// the dK/dV and dQ kernels) against the engine's composed attention and its autograd, with partial tiles,
// several tiles each way and causal masks; and the CLS row of the probabilities, read from the q and k of a
// packed projection in place (strided views), in f32 and bf16, against softmaxes summed in double.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "engine/cuda/attention.cuh"  // first: it brings the emulation's stand-ins for CUDA's keywords
#include "engine/math/bf16.h"
#include "engine/ops/ops.h"
#include "test_util.h"

namespace aclip {

namespace {

using namespace cuda::attention_kernels;

template <int D>
void check_attention_kernels(int64_t Tq, int64_t Tk, bool causal) {
    CAPTURE(D);
    CAPTURE(Tq);
    CAPTURE(Tk);
    CAPTURE(causal);
    const int64_t B = 2, H = 2, BH = B * H;  // the kernels' (batch, head) offsets
    const Tensor q = test::random_tensor({B, H, Tq, D}, 11, -2, 2, DType::F32),
                 k = test::random_tensor({B, H, Tk, D}, 12, -2, 2, DType::F32),
                 v = test::random_tensor({B, H, Tk, D}, 13, -2, 2, DType::F32),
                 go = test::random_tensor({B, H, Tq, D}, 14, -1, 1, DType::F32);
    Tensor out = empty({B, H, Tq, D}), dq = empty({B, H, Tq, D}), dk = empty({B, H, Tk, D}),
           dv = empty({B, H, Tk, D}), lse = empty({BH * Tq}), delta = empty({BH * Tq});
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
    const float *pq = q.data<float>(), *pk = k.data<float>(), *pv = v.data<float>(), *pg = go.data<float>();
    const unsigned q_blocks = static_cast<unsigned>((Tq + kRows - 1) / kRows),
                   k_blocks = static_cast<unsigned>((Tk + kRows - 1) / kRows);
    cuda::emulate_launch(q_blocks, BH, kRows, [&] {
        flash_forward_kernel<D, float>(pq, pk, pv, out.data<float>(), lse.data<float>(), Tq, Tk, scale,
                                       causal);
    });
    cuda::emulate_launch(static_cast<unsigned>((BH * Tq + 63) / 64), 1, 64, [&] {
        flash_delta_kernel<D, float>(out.data<float>(), pg, delta.data<float>(), BH * Tq);
    });
    cuda::emulate_launch(k_blocks, BH, kRows, [&] {
        flash_backward_kv_kernel<D, float>(pq, pk, pv, pg, lse.data<float>(), delta.data<float>(),
                                           dk.data<float>(), dv.data<float>(), Tq, Tk, scale, causal);
    });
    cuda::emulate_launch(q_blocks, BH, kRows, [&] {
        flash_backward_q_kernel<D, float>(pq, pk, pv, pg, lse.data<float>(), delta.data<float>(),
                                          dq.data<float>(), Tq, Tk, scale, causal);
    });

    // The composed attention in f64 with autograd: the reference. f32 sums in another order: 1e-5.
    const Tensor qr = q.to(DType::F64).requires_grad_(), kr = k.to(DType::F64).requires_grad_(),
                 vr = v.to(DType::F64).requires_grad_();
    const Tensor expected = scaled_dot_product_attention(qr, kr, vr, causal).out;
    sum(mul(expected, go.to(DType::F64))).backward();
    CHECK(test::norm_rel_error(out, expected.detach()) < 1e-5);
    CHECK(test::norm_rel_error(dq, qr.grad()) < 1e-5);
    CHECK(test::norm_rel_error(dk, kr.grad()) < 1e-5);
    CHECK(test::norm_rel_error(dv, vr.grad()) < 1e-5);
    // Each row's log-sum-exp of its scaled scores, against a logsumexp in f64.
    const Tensor scores = mul_scalar(matmul(q.to(DType::F64), k.to(DType::F64).transpose(-2, -1)), scale);
    const std::vector<double> s = scores.to_vector<double>(), got = lse.to_vector<double>();
    for (int64_t r = 0; r < BH * Tq; ++r) {
        const int64_t i = r % Tq;
        double m = -INFINITY, total = 0;
        for (int64_t j = 0; j < Tk && (!causal || j <= i); ++j)
            m = std::max(m, s[static_cast<size_t>(r * Tk + j)]);
        for (int64_t j = 0; j < Tk && (!causal || j <= i); ++j)
            total += std::exp(s[static_cast<size_t>(r * Tk + j)] - m);
        REQUIRE(std::abs(got[static_cast<size_t>(r)] - (m + std::log(total))) < 1e-4);
    }
}

// probs (B, H, T) from the q and k of a packed (B, T, 3, H, D) projection, as the EMA teacher calls it.
template <class T, int V>
void check_cls_probs(int64_t T_, int64_t D) {
    CAPTURE(sizeof(T));
    CAPTURE(V);
    CAPTURE(T_);
    CAPTURE(D);
    const int64_t B = 2, H = 3, W = H * D;
    const Tensor qkv = test::random_tensor({B, T_, 3 * W}, 21, -2, 2, DType::F64);
    const Tensor device_qkv = qkv.to(dtype_of<T>::value);  // what the kernel reads
    const std::vector<double> x = device_qkv.to(DType::F64).to_vector<double>();
    std::vector<T> probs(static_cast<size_t>(B * H * T_));
    const ViewStrides strides{T_ * 3 * W, D, 3 * W};  // (b, h, t, d) at b T 3W + h D + t 3W + d
    const T* base = device_qkv.data<T>();
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
    cuda::emulate_launch(static_cast<unsigned>(B * H), 1, 256, [&] {
        cls_probs_kernel<T, V>(base, strides, base + W, strides, probs.data(), H, T_, D,
                               cuda::attention_kernels::cls_group_lanes(D, V), scale);
    });
    // f32: sums of D products and of T exponentials in another order; bf16 adds the output's rounding
    const double tolerance = sizeof(T) == 4 ? 1e-5 : 8e-3;
    for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < H; ++h) {
            std::vector<double> s(static_cast<size_t>(T_));
            double m = -INFINITY, total = 0;
            for (int64_t j = 0; j < T_; ++j) {
                double dot = 0;
                for (int64_t d = 0; d < D; ++d)
                    dot += x[static_cast<size_t>(b * T_ * 3 * W + h * D + d)] *
                           x[static_cast<size_t>(b * T_ * 3 * W + j * 3 * W + W + h * D + d)];
                s[static_cast<size_t>(j)] = dot * scale;
                m = std::max(m, s[static_cast<size_t>(j)]);
            }
            for (double v : s) total += std::exp(v - m);
            for (int64_t j = 0; j < T_; ++j) {
                const double expected = std::exp(s[static_cast<size_t>(j)] - m) / total;
                const double got =
                    static_cast<double>(cuda::ld(probs[static_cast<size_t>((b * H + h) * T_ + j)]));
                REQUIRE(std::abs(got - expected) <= tolerance * expected + 1e-9);
            }
        }
}

}  // namespace

TEST_SUITE("cuda") {
    TEST_CASE("f32 flash attention on emulated threads equals the composed attention") {
        // Partial tiles (37 queries, 41 keys), several 64-row blocks and 32-key tiles (70 and 130),
        // fewer keys than a tile (3), causal and not.
        for (bool causal : {false, true}) {
            check_attention_kernels<32>(37, 41, causal);
            check_attention_kernels<64>(70, 70, causal);
            check_attention_kernels<32>(70, 3, causal);
            check_attention_kernels<64>(3, 130, causal);
        }
    }

    TEST_CASE("the CLS row of the attention probabilities, read from a packed projection in place") {
        // One key, fewer keys than threads, more keys than threads (the strided loop), the ViT's 197.
        // Rows read by groups of 16 and 32 lanes an element at a time (two elements a lane at 64), and of
        // 4 and 8 lanes a pack; 96 bf16 dims take 16 lanes, half of them with a second pack.
        for (int64_t T_ : {1, 37, 300, 197}) {
            check_cls_probs<float, 1>(T_, 16);  // an element at a time
            check_cls_probs<bf16, 1>(T_, 64);
            check_cls_probs<float, 4>(T_, 16);  // 16-byte packs
            check_cls_probs<bf16, 8>(T_, 64);
            check_cls_probs<bf16, 8>(T_, 136);
        }
        CHECK(cuda::attention_kernels::cls_group_lanes(64, 8) == 8);
        CHECK(cuda::attention_kernels::cls_group_lanes(136, 8) == 32);  // 17 packs: 32 lanes, one each
        CHECK(cuda::attention_kernels::cls_group_lanes(256, 1) == 32);  // 8 elements a lane
        CHECK(cuda::attention_kernels::cls_group_lanes(3, 4) == 1);
    }
}

}  // namespace aclip
