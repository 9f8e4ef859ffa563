// test_layer_norm_emulated.cpp: the LayerNorm kernels of engine/cuda/layer_norm.cuh, compiled for the CPU
// and run on emulated threads (engine/cuda/warp_emulation.h) against the engine's CPU layer_norm and its
// autograd: the forward (output, mean, 1/std), the input gradient, and the weight and bias gradients
// through the column sums and from the input gradient's own read of a held row (one block, and three whose
// warps take rows grid-stride; with and without the input gradient), in f32 and bf16, with 16-byte packs
// and without, rows held whole in registers (with packs past the row's end) and rows taken in slices, rows
// that leave a block partly empty, and one and several row chunks; and an f32 input with a bf16 output and
// output gradient (what a matrix product under autocast takes). Held rows taken two a warp give the bits of
// one a warp, forward and backward.
#include <doctest/doctest.h>

#include <cstring>
#include <vector>

#include "engine/cuda/launch.h"
#include "engine/cuda/layer_norm.cuh"  // first: it brings the emulation's stand-ins for CUDA's keywords
#include "engine/ops/ops.h"
#include "test_util.h"

namespace aclip {

namespace {

using namespace cuda::layer_norm_kernels;

template <class T>
std::vector<T> values_of(const Tensor& t) {  // an f32 tensor's values in T (bf16: rounded)
    std::vector<T> out;
    for (float v : t.to_vector<float>()) out.push_back(store_as<T>(v));
    return out;
}
template <class T>
Tensor tensor_of(const std::vector<T>& v, const Shape& s) {
    std::vector<float> f;
    for (T x : v) f.push_back(static_cast<float>(load(x)));
    return from_vector(f, s);
}

// x, w, b in T; y and its gradient g in Y; rows in packs of V, P a lane.
template <class T, class Y, int V, int P>
void check_layer_norm(int64_t R, int64_t D) {
    CAPTURE(sizeof(T));
    CAPTURE(sizeof(Y));
    CAPTURE(V);
    CAPTURE(P);
    CAPTURE(R);
    CAPTURE(D);
    // Inputs as T holds them, and the reference on exactly those values in f32.
    const std::vector<T> x = values_of<T>(test::random_tensor({R, D}, 1, -2, 2)),
                         w = values_of<T>(test::random_tensor({D}, 2, 0.5, 1.5)),
                         b = values_of<T>(test::random_tensor({D}, 3, -1, 1));
    const std::vector<Y> g = values_of<Y>(test::random_tensor({R, D}, 4, -1, 1));
    const Tensor xr = tensor_of(x, {R, D}).requires_grad_(), wr = tensor_of(w, {D}).requires_grad_(),
                 br = tensor_of(b, {D}).requires_grad_();
    const Tensor yr = layer_norm(xr, wr, br, 1e-5);
    sum(mul(yr, tensor_of(g, {R, D}))).backward();

    const unsigned row_blocks = static_cast<unsigned>((R + kRowsPerBlock - 1) / kRowsPerBlock);
    std::vector<Y> y(x.size());
    std::vector<T> dx(x.size()), dw(w.size()), db(b.size());
    std::vector<float> mean(static_cast<size_t>(R)), rstd(mean.size());
    cuda::emulate_launch(row_blocks, 1, kThreads, [&] {
        layer_norm_forward_kernel<T, Y, V, P>(x.data(), w.data(), b.data(), y.data(), mean.data(),
                                              rstd.data(), R, D, 1e-5f);
    });
    if (D <= 32 * V * P) {  // rows held whole, two a warp (every row's loads first): the same bits
        std::vector<Y> y2(x.size());
        std::vector<float> mean2(mean.size()), rstd2(mean.size());
        const unsigned pair_blocks = static_cast<unsigned>((R + 2 * kRowsPerBlock - 1) / (2 * kRowsPerBlock));
        cuda::emulate_launch(pair_blocks, 1, kThreads, [&] {
            layer_norm_forward_kernel<T, Y, V, P, 2>(x.data(), w.data(), b.data(), y2.data(), mean2.data(),
                                                     rstd2.data(), R, D, 1e-5f);
        });
        CHECK(std::memcmp(y2.data(), y.data(), y.size() * sizeof(Y)) == 0);
        CHECK(mean2 == mean);
        CHECK(rstd2 == rstd);
    }
    cuda::emulate_launch(row_blocks, 1, kThreads, [&] {
        layer_norm_backward_kernel<T, Y, V, P, false, false>(g.data(), x.data(), w.data(), mean.data(),
                                                             rstd.data(), dx.data(), nullptr, nullptr, R, D);
    });
    // Added into a gradient already held (a residual stream's): bit for bit that gradient + dx, as the
    // separate sum rounds it.
    std::vector<T> held = values_of<T>(test::random_tensor({R, D}, 5, -1, 1)), summed = held;
    std::vector<bf16> low(summed.size());
    cuda::emulate_launch(row_blocks, 1, kThreads, [&] {
        layer_norm_backward_kernel<T, Y, V, P, false, true>(
            g.data(), x.data(), w.data(), mean.data(), rstd.data(), summed.data(), low.data(), nullptr, R, D);
    });
    // and its bf16 rounding, written in the same pass: bit for bit the sum's cast
    const Tensor low_expected = tensor_of(summed, {R, D}).to(DType::BF16);
    CHECK(std::memcmp(low.data(), low_expected.raw_data(), low.size() * sizeof(bf16)) == 0);
    if (D <= 32 * V * P) {  // rows held whole, two a warp (both rows' loads first): the same bits
        std::vector<T> summed2 = held;
        std::vector<bf16> low2(low.size());
        const unsigned pair_blocks = static_cast<unsigned>((R + 2 * kRowsPerBlock - 1) / (2 * kRowsPerBlock));
        cuda::emulate_launch(pair_blocks, 1, kThreads, [&] {
            layer_norm_backward_kernel<T, Y, V, P, false, true, 2>(g.data(), x.data(), w.data(), mean.data(),
                                                                   rstd.data(), summed2.data(), low2.data(),
                                                                   nullptr, R, D);
        });
        CHECK(std::memcmp(summed2.data(), summed.data(), summed.size() * sizeof(T)) == 0);
        CHECK(std::memcmp(low2.data(), low.data(), low.size() * sizeof(bf16)) == 0);
    }
    const DType dt = dtype_of<T>::value;  // tensor_of gives f32: the separate sum in T, as the engine adds
    const Tensor separate = add(tensor_of(held, {R, D}).to(dt), tensor_of(dx, {R, D}).to(dt)).to(DType::F32);
    const std::vector<float> fused = tensor_of(summed, {R, D}).template to_vector<float>(),
                             apart = separate.template to_vector<float>();
    CHECK(fused == apart);
    const int64_t column_blocks = (D + 32 * V - 1) / (32 * V), chunks = cuda::column_chunks(column_blocks, R);
    std::vector<float> partial(static_cast<size_t>(2 * chunks * D));
    cuda::emulate_launch(
        static_cast<unsigned>(column_blocks), static_cast<unsigned>(chunks), cuda::columns::kThreads, [&] {
            layer_norm_param_kernel<T, Y, V>(g.data(), x.data(), mean.data(), rstd.data(), partial.data(),
                                             dw.data(), db.data(), R, D, chunks);
        });
    if (chunks > 1)  // as run_column_sums finishes: each output's chunks added
        for (T* out : {dw.data(), db.data()})
            cuda::emulate_launch(
                static_cast<unsigned>(cuda::columns::add_chunks_blocks(D)), 1, cuda::columns::kThreads, [&] {
                    cuda::columns::add_chunks<T>(partial.data() + (out == db.data() ? chunks * D : 0), out, D,
                                                 chunks);
                });

    // f32: rounding of sums over D (forward, dx) or R (dw, db) terms; bf16: one rounding of each output to
    // bf16 (2^-9 relative) on top, norm-relative. (The reference takes g as Y holds it, so dx, dw and db
    // are as exact as T allows.)
    const double tol = sizeof(T) == 2 ? 1e-2 : 1e-5;
    CHECK(test::norm_rel_error(tensor_of(y, {R, D}), yr.detach()) < (sizeof(Y) == 2 ? 1e-2 : 1e-5));
    CHECK(test::norm_rel_error(tensor_of(dx, {R, D}), xr.grad()) < tol);
    CHECK(test::norm_rel_error(tensor_of(dw, {D}), wr.grad()) < tol);
    CHECK(test::norm_rel_error(tensor_of(db, {D}), br.grad()) < tol);

    if (D <= 32 * V * P) {  // a held row: the weight and bias gradients from the same read, two grids
        for (unsigned blocks : {1u, 3u}) {  // one block for all rows; three, warps taking rows grid-stride
            CAPTURE(blocks);
            std::vector<T> dx2 = held, dw2(w.size()), db2(b.size());
            std::vector<float> sums(static_cast<size_t>(2 * blocks * D), -1.0f);
            cuda::emulate_launch(blocks, 1, kThreads, [&] {
                layer_norm_backward_kernel<T, Y, V, P, true, true>(g.data(), x.data(), w.data(), mean.data(),
                                                                   rstd.data(), dx2.data(), nullptr,
                                                                   sums.data(), R, D);
            });
            CHECK(std::memcmp(dx2.data(), summed.data(), dx2.size() * sizeof(T)) ==
                  0);  // the same input gradient
            for (int k = 0; k < 2; ++k)
                cuda::emulate_launch(static_cast<unsigned>(cuda::columns::add_chunks_blocks(D)), 1,
                                     cuda::columns::kThreads, [&] {
                                         cuda::columns::add_chunks<T>(sums.data() + k * blocks * D,
                                                                      k ? db2.data() : dw2.data(), D, blocks);
                                     });
            CHECK(test::norm_rel_error(tensor_of(dw2, {D}), wr.grad()) < tol);
            CHECK(test::norm_rel_error(tensor_of(db2, {D}), br.grad()) < tol);
            // Without an input gradient (dx null): the same parameter sums, bit for bit.
            std::vector<float> alone(sums.size(), -1.0f);
            cuda::emulate_launch(blocks, 1, kThreads, [&] {
                layer_norm_backward_kernel<T, Y, V, P, true, false>(g.data(), x.data(), w.data(), mean.data(),
                                                                    rstd.data(), nullptr, nullptr,
                                                                    alone.data(), R, D);
            });
            CHECK(alone == sums);
            // Two rows a warp at a time (a warp's rows added in the same order): the same bits, both ways.
            std::vector<T> dx3 = held;
            std::vector<float> paired(sums.size(), -1.0f);
            cuda::emulate_launch(blocks, 1, kThreads, [&] {
                layer_norm_backward_kernel<T, Y, V, P, true, true, 2>(g.data(), x.data(), w.data(),
                                                                      mean.data(), rstd.data(), dx3.data(),
                                                                      nullptr, paired.data(), R, D);
            });
            CHECK(paired == sums);
            CHECK(std::memcmp(dx3.data(), summed.data(), dx3.size() * sizeof(T)) == 0);
        }
    }
    const Tensor xs = tensor_of(x, {R, D});
    CHECK(test::norm_rel_error(from_vector(mean, {R}), aclip::mean(xs, {1})) < 1e-5);
    CHECK(test::norm_rel_error(from_vector(rstd, {R}), rsqrt(add_scalar(var(xs, {1}, false), 1e-5))) < 1e-5);
}

}  // namespace

TEST_SUITE("cuda") {
    TEST_CASE("LayerNorm kernels on emulated threads equal the CPU op, forward and backward") {
        // f32 in packs of 4: a row in one pack a lane with a partly empty last block; a row held in 2 packs
        // a lane, the last ones past its end; a row in three slices, the last partial.
        check_layer_norm<float, float, 4, 1>(37, 64);
        check_layer_norm<float, float, 4, 2>(9, 200);
        check_layer_norm<float, float, 4, 1>(9, 300);
        check_layer_norm<float, float, 1, 8>(13, 45);  // single elements (45 columns take no packs)
        check_layer_norm<float, float, 1, 8>(5, 600);  // single elements in slices of 256
        check_layer_norm<bf16, bf16, 8, 1>(100, 64);  // bf16 packs of 8; three row chunks for the column sums
        check_layer_norm<bf16, bf16, 8, 3>(9, 768);   // ViT-B/16's rows, 3 packs a lane
        check_layer_norm<bf16, bf16, 8, 1>(7, 520);   // slices of 256, the last of one pack
        check_layer_norm<bf16, bf16, 1, 8>(9, 45);
        check_layer_norm<float, bf16, 4, 1>(100,
                                            64);  // f32 in, bf16 out and gradient: packs of 4, 8 bytes out
        check_layer_norm<float, bf16, 4, 6>(6, 768);  // the residual stream's LayerNorms, 6 packs a lane
        check_layer_norm<float, bf16, 1, 8>(9, 45);
    }
}

}  // namespace aclip
