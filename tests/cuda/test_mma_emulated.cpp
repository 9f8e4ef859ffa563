// test_mma_emulated.cpp: the tensor-core flash attention kernels (engine/cuda/attention_mma.cuh), compiled
// for the CPU and run on emulated warps (engine/cuda/warp_emulation.h), against the engine's composed
// attention with autograd. This checks, on any machine, what a GPU run would otherwise be the first to
// see: the kernels' fragment indexing, the masks (key padding, causal, rows past the end), the online
// softmax and its log-sum-exp, and the three products of the backward. The fragment layouts themselves are
// the emulation's assumption (mma.cuh); the GPU parity case checks them.
#include <doctest/doctest.h>

#include <array>
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

// Where a (B, H, T, D) operand lies in a buffer: contiguous, or one of the three of a packed (B, T, 3, H, D)
// projection (`which` 0, 1, 2), or a (B, T, H, D) output with the heads side by side (which = -1).
struct Layout {
    int64_t offset;
    cuda::flash_mma::Heads<const uint16_t*> strides;  // data unused: the strides
};

Layout contiguous(int64_t H, int64_t T, int64_t D) {
    return {0, {nullptr, H * T * D, T * D, D}};
}
Layout packed(int64_t H, int64_t T, int64_t D, int64_t which) {
    const int64_t W = H * D, width = which < 0 ? W : 3 * W;
    return {which < 0 ? 0 : which * W, {nullptr, T * width, D, width}};
}

// The (B, H, T, D) values of t written into buf at layout l (buf sized by the caller), and read back.
void scatter(const Bits& values, const Shape& s, const Layout& l, Bits& buf) {
    for (int64_t b = 0, i = 0; b < s[0]; ++b)
        for (int64_t h = 0; h < s[1]; ++h)
            for (int64_t t = 0; t < s[2]; ++t)
                for (int64_t d = 0; d < s[3]; ++d, ++i)
                    buf[static_cast<size_t>(l.offset + b * l.strides.batch + h * l.strides.head +
                                            t * l.strides.row + d)] = values[static_cast<size_t>(i)];
}
Tensor gather(const Bits& buf, const Shape& s, const Layout& l) {
    Bits values;
    for (int64_t b = 0; b < s[0]; ++b)
        for (int64_t h = 0; h < s[1]; ++h)
            for (int64_t t = 0; t < s[2]; ++t)
                for (int64_t d = 0; d < s[3]; ++d)
                    values.push_back(buf[static_cast<size_t>(l.offset + b * l.strides.batch +
                                                             h * l.strides.head + t * l.strides.row + d)]);
    return from_bits(values, s);
}

template <class P>
cuda::flash_mma::Heads<P> at(P base, const Layout& l) {
    return {base + l.offset, l.strides.batch, l.strides.head, l.strides.row};
}

// Runs the three kernels (and the delta kernel) on emulated warps and compares them with the composed
// attention and its autograd. packed: q, k and v read from one (B, T, 3, H, D) buffer, the output and dO
// in (B, T, H, D), the gradients written into one packed buffer, as self_attention runs them (Tq = Tk).
template <int D>
void check_attention(int64_t Tq, int64_t Tk, bool causal, bool is_packed) {
    CAPTURE(D);
    CAPTURE(Tq);
    CAPTURE(Tk);
    CAPTURE(causal);
    CAPTURE(is_packed);
    const int64_t B = 2, H = 2;  // two batches of two heads: the kernels' per-(batch, head) offsets
    auto bf16_values = [](const Shape& s, uint64_t seed) {  // inputs that bf16 holds exactly
        return from_bits(to_bits(test::random_tensor(s, seed, -2, 2, DType::F32)), s);
    };
    const Shape qs{B, H, Tq, D}, ks{B, H, Tk, D};
    const Tensor q = bf16_values(qs, 1), k = bf16_values(ks, 2), v = bf16_values(ks, 3),
                 go = bf16_values(qs, 4);
    const Layout lq = is_packed ? packed(H, Tq, D, 0) : contiguous(H, Tq, D),
                 lk = is_packed ? packed(H, Tk, D, 1) : contiguous(H, Tk, D),
                 lv = is_packed ? packed(H, Tk, D, 2) : contiguous(H, Tk, D),
                 lo = is_packed ? packed(H, Tq, D, -1) : contiguous(H, Tq, D);
    const size_t in_size = static_cast<size_t>(is_packed ? 3 * B * Tq * H * D : B * H * Tk * D);
    Bits qb(is_packed ? in_size : static_cast<size_t>(B * H * Tq * D)), kb(in_size), vb(in_size);
    Bits& kbuf = is_packed ? qb : kb;  // packed: all three in qb
    Bits& vbuf = is_packed ? qb : vb;
    scatter(to_bits(q), qs, lq, qb);
    scatter(to_bits(k), ks, lk, kbuf);
    scatter(to_bits(v), ks, lv, vbuf);
    Bits gb(static_cast<size_t>(B * H * Tq * D)), out(gb.size());
    scatter(to_bits(go), qs, lo, gb);
    Bits dq(qb.size()), dk(kb.size()), dv(vb.size());
    Bits& dkbuf = is_packed ? dq : dk;
    Bits& dvbuf = is_packed ? dq : dv;

    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
    using namespace cuda::flash_mma;
    const unsigned q_blocks = static_cast<unsigned>((Tq + kTileRows - 1) / kTileRows),
                   k_blocks = static_cast<unsigned>((Tk + kTileRows - 1) / kTileRows);
    const uint16_t *pq = qb.data(), *pk = kbuf.data(), *pv = vbuf.data(), *pg = gb.data();
    std::vector<float> lse(static_cast<size_t>(B * H * Tq)), delta(lse.size());
    cuda::emulate_launch(q_blocks, B * H, kThreads, [&] {
        forward_kernel<D>(at(pq, lq), at(pk, lk), at(pv, lv), at(out.data(), lo), lse.data(), H, Tq, Tk,
                          scale * kLog2e, causal);
    });
    const uint16_t* po = out.data();
    cuda::emulate_launch(static_cast<unsigned>(delta_blocks<D>(B * H * Tq)), 1, kDeltaThreads,
                         [&] { delta_kernel<D>(at(po, lo), at(pg, lo), delta.data(), H, Tq, B * H * Tq); });
    // dS^T's workspace starts as NaN: a part the dK/dV kernel leaves unwritten (rows past Tk, the tiles
    // above a causal diagonal, columns past Tq) must not reach a stored gradient.
    Bits ds_t(static_cast<size_t>(B * H * Tk * score_columns(Tq)), 0x7fc0);
    cuda::emulate_launch(k_blocks, B * H, kThreads, [&] {
        backward_kv_kernel<D>(at(pq, lq), at(pk, lk), at(pv, lv), at(pg, lo), lse.data(), delta.data(),
                              at(dkbuf.data(), lk), at(dvbuf.data(), lv), ds_t.data(), H, Tq, Tk,
                              scale * kLog2e, scale, causal);
    });
    cuda::emulate_launch(q_blocks, B * H, kThreads, [&] {
        backward_q_kernel<D>(at(pk, lk), ds_t.data(), at(dq.data(), lq), H, Tq, Tk, scale, causal);
    });

    // The reference: the composed attention in f32 on the same bf16 values, and autograd.
    const Tensor qr = q.detach().requires_grad_(), kr = k.detach().requires_grad_(),
                 vr = v.detach().requires_grad_();
    const Tensor expected = scaled_dot_product_attention(qr, kr, vr, causal).out;
    sum(mul(expected, go)).backward();
    // Probabilities and outputs are rounded to bf16 (2^-9 relative each) before and after the second
    // product, dS and the gradients likewise: a few bf16 roundings, norm-relative.
    CHECK(test::norm_rel_error(gather(out, qs, lo), expected.detach()) < 1e-2);
    CHECK(test::norm_rel_error(gather(dq, qs, lq), qr.grad()) < 2e-2);
    CHECK(test::norm_rel_error(gather(dkbuf, ks, lk), kr.grad()) < 2e-2);
    CHECK(test::norm_rel_error(gather(dvbuf, ks, lv), vr.grad()) < 2e-2);
    // The log-sum-exp of every row, in f32 from f32 scores: f32 rounding only.
    const std::vector<float> qv = q.to_vector<float>(), kv = k.to_vector<float>();
    for (int64_t bh = 0; bh < B * H; ++bh)
        for (int64_t i = 0; i < Tq; ++i) {
            double m = -INFINITY, total = 0;
            std::vector<double> s;
            for (int64_t j = 0; j < Tk && (!causal || j <= i); ++j) {
                double dot = 0;
                for (int64_t d = 0; d < D; ++d)
                    dot += qv[static_cast<size_t>((bh * Tq + i) * D + d)] *
                           kv[static_cast<size_t>((bh * Tk + j) * D + d)];
                s.push_back(dot * scale);
                m = std::max(m, s.back());
            }
            for (double x : s) total += std::exp(x - m);
            REQUIRE(std::abs(lse[static_cast<size_t>(bh * Tq + i)] - (m + std::log(total))) < 1e-4);
        }
}

}  // namespace

TEST_SUITE("cuda") {
    TEST_CASE("tensor-core flash attention on emulated warps equals the composed attention") {
        // Partial tiles (37 queries, 41 keys), whole ones (64), several tiles each way (70 queries of 3
        // keys; 3 queries of 130 keys), causal and not; contiguous operands, and the packed q, k, v of
        // self_attention (one projection buffer in, one gradient buffer out).
        for (bool causal : {false, true}) {
            check_attention<32>(37, 41, causal, false);
            check_attention<64>(37, 41, causal, false);
            check_attention<64>(64, 64, causal, false);
            check_attention<64>(70, 3, causal, false);
            check_attention<32>(3, 130, causal, false);
            check_attention<64>(70, 70, causal, true);
            check_attention<32>(37, 37, causal, true);
        }
        // ViT-B/16's 197 tokens: the last key tile holds 5 keys and the last block's last 3 warps no query.
        check_attention<64>(197, 197, false, true);
    }

    TEST_CASE("ldmatrix from an (n, k) tile gives the B fragments ldmatrix.trans gives from its transpose") {
        // The transposed form was checked against the hardware (run 4); the plain form (K's fragments in
        // Q K^T) must agree with it: register m of each lane holds the same two values either way.
        constexpr int N = 8, K = 32, stride = K + 8;
        std::vector<uint16_t> nk(N * stride), kn(K * (N + 8));
        for (int n = 0; n < N; ++n)
            for (int k = 0; k < K; ++k)
                nk[n * stride + k] = kn[k * (N + 8) + n] = static_cast<uint16_t>(n * K + k + 1);
        std::vector<std::array<uint32_t, 4>> plain(32), transposed(32);
        cuda::emulate_launch(1, 1, 32, [&] {
            const int lane = static_cast<int>(cuda::threadIdx.x), m = lane / 8, r = lane % 8;
            uint32_t x[4], y[4];
            cuda::ldmatrix_x4<false>(x,
                                     nk.data() + r * stride + m * 8);  // columns 8m .. 8m + 7 of the 8 rows
            // the same four 8 x 8 blocks of the transpose: rows 8m .. 8m + 7, columns 0 .. 7
            cuda::ldmatrix_x4<true>(y, kn.data() + (m * 8 + r) * (N + 8));
            for (int i = 0; i < 4; ++i) {
                plain[lane][i] = x[i];
                transposed[lane][i] = y[i];
            }
        });
        CHECK(plain == transposed);
        CHECK(plain[5][1] ==
              (static_cast<uint32_t>(1 * K + 8 + 2 + 1) | (static_cast<uint32_t>(1 * K + 8 + 3 + 1) << 16)));
    }
}

}  // namespace aclip
