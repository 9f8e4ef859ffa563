// test_pointwise_emulated.cpp: the elementwise kernels of engine/cuda/pointwise.cuh, which every CUDA op
// runs through, compiled for the CPU and run on emulated threads (engine/cuda/warp_emulation.h) against the
// CPU's map_pointwise: the 16-byte vectorised path (a grid-stride loop of several turns, and a tail that
// is not a whole pack) and the strided path over collapsed broadcast dims, in f32 and bf16,
// for a binary formula, a unary one and a comparison writing a u8 mask. Both sides evaluate the same formula
// of engine/math/pointwise.h in the same compute type, so they must agree bit for bit.
#include <doctest/doctest.h>

#include <cstring>
#include <vector>

#include "engine/cpu/map.h"
#include "engine/cuda/pointwise.cuh"  // first: it brings the emulation's stand-ins for CUDA's keywords
#include "engine/ops/autocast.h"
#include "test_util.h"

namespace aclip {

namespace {

constexpr int kThreads = 256;

// The bytes of a contiguous tensor, to compare outputs bit for bit.
std::vector<uint8_t> bytes_of(const Tensor& t) {
    const Tensor c = t.contiguous();
    std::vector<uint8_t> out(static_cast<size_t>(c.numel()) * dtype_size(c.dtype()));
    std::memcpy(out.data(), c.raw_data(), out.size());
    return out;
}

template <PW op, class T>
void check_vectorized(int64_t n, bool unary) {
    CAPTURE(pointwise_name(op));
    CAPTURE(sizeof(T));
    CAPTURE(n);
    using O = std::conditional_t<pointwise_writes_mask(op), uint8_t, T>;
    const Tensor a = test::random_tensor({n}, 1, -3, 3).to(dtype_of<T>::value),
                 b = test::random_tensor({n}, 2, -3, 3).to(dtype_of<T>::value);
    const Tensor expected = unary ? map_pointwise<op>(a, Tensor()) : map_pointwise<op>(a, b);
    Tensor out = empty({n}, dtype_of<O>::value);
    const T* pa = a.data<T>();
    const T* pb = unary ? pa : b.data<T>();
    // Two blocks: fewer threads than packs, so the grid-stride loop takes a second turn.
    cuda::emulate_launch(2, 1, kThreads, [&] {
        cuda::pointwise_vectorized<op, T, T, O>(out.data<O>(), pa, pb, n, compute_t<T>(0), compute_t<T>(0));
    });
    CHECK(bytes_of(out) == bytes_of(expected));
}

template <PW op, class T>
void check_strided() {
    CAPTURE(pointwise_name(op));
    CAPTURE(sizeof(T));
    using O = std::conditional_t<pointwise_writes_mask(op), uint8_t, T>;
    const Shape shape{5, 7, 3};
    const Tensor a = test::random_tensor({3, 7, 5}, 3, -3, 3).to(dtype_of<T>::value).permute({2, 1, 0}),
                 b = test::random_tensor({7, 1}, 4, -3, 3).to(dtype_of<T>::value);  // broadcast
    const Tensor expected = map_pointwise<op>(a, b);
    Tensor out = empty(shape, dtype_of<O>::value);
    const Strides so = out.strides(), sa = broadcast_strides(a.shape(), a.strides(), shape),
                  sb = broadcast_strides(b.shape(), b.strides(), shape);
    const Strides* all[3] = {&so, &sa, &sb};
    const cuda::CollapsedDims dims = cuda::collapse_dims(shape, all, 3);
    cuda::emulate_launch(1, 1, kThreads, [&] {
        cuda::pointwise_strided<op, T, T, O>(out.data<O>(), a.data<T>(), b.data<T>(), dims,
                                             shape_numel(shape), compute_t<T>(0), compute_t<T>(0));
    });
    CHECK(bytes_of(out) == bytes_of(expected));
}

// An f32 operand with a bf16 one (either order; add and sub under autocast), vectorised and with a
// broadcast bf16 row through the strided path, against the CPU's map on the same operands, bit for bit.
template <PW op, class A, class B>
void check_mixed(int64_t n) {
    CAPTURE(pointwise_name(op));
    CAPTURE(sizeof(A));
    CAPTURE(n);
    AutocastGuard autocast;  // where the engine takes mixed operands
    const Tensor a = test::random_tensor({n}, 7, -3, 3).to(dtype_of<A>::value),
                 b = test::random_tensor({n}, 8, -3, 3).to(dtype_of<B>::value);
    const Tensor expected = map_pointwise<op>(a, b);
    REQUIRE(expected.dtype() == DType::F32);
    Tensor out = empty({n}, DType::F32);
    cuda::emulate_launch(2, 1, kThreads, [&] {
        cuda::pointwise_vectorized<op, A, B, float>(out.data<float>(), a.data<A>(), b.data<B>(), n, 0.0f,
                                                    0.0f);
    });
    CHECK(bytes_of(out) == bytes_of(expected));
    // and as the sum of the promoted operands, which the cast path computed
    CHECK(bytes_of(out) == bytes_of(map_pointwise<op>(a.to(DType::F32), b.to(DType::F32))));

    const Shape shape{5, 7};
    const Tensor x = test::random_tensor(shape, 9, -3, 3).to(dtype_of<A>::value),
                 row = test::random_tensor({7}, 10, -3, 3).to(dtype_of<B>::value);
    Tensor strided_out = empty(shape, DType::F32);
    const Strides so = strided_out.strides(), sa = x.strides(),
                  sb = broadcast_strides(row.shape(), row.strides(), shape);
    const Strides* all[3] = {&so, &sa, &sb};
    const cuda::CollapsedDims dims = cuda::collapse_dims(shape, all, 3);
    cuda::emulate_launch(1, 1, kThreads, [&] {
        cuda::pointwise_strided<op, A, B, float>(strided_out.data<float>(), x.data<A>(), row.data<B>(), dims,
                                                 shape_numel(shape), 0.0f, 0.0f);
    });
    CHECK(bytes_of(strided_out) == bytes_of(map_pointwise<op>(x, row)));
}

// A cast of n elements by the vectorised copy, and of a permuted (3, 5, 7) view by the strided one,
// against Tensor::to on the CPU.
template <class D, class S>
void check_casts(int64_t n) {
    CAPTURE(sizeof(D));
    CAPTURE(sizeof(S));
    CAPTURE(n);
    const Tensor src = test::random_tensor({n}, 5, 0, 200).to(dtype_of<S>::value);
    Tensor out = empty({n}, dtype_of<D>::value);
    cuda::emulate_launch(2, 1, kThreads,
                         [&] { cuda::copy_vectorized<D, S>(out.data<D>(), src.data<S>(), n); });
    CHECK(bytes_of(out) == bytes_of(src.to(dtype_of<D>::value)));

    const Tensor view =
        test::random_tensor({7, 5, 3}, 6, -100, 100).to(dtype_of<S>::value).permute({2, 1, 0});
    Tensor dst = empty(view.shape(), dtype_of<D>::value);
    const Strides sd = dst.strides(), ss = view.strides();
    const Strides* all[2] = {&sd, &ss};
    const cuda::CollapsedDims dims = cuda::collapse_dims(view.shape(), all, 2);
    cuda::emulate_launch(
        1, 1, kThreads, [&] { cuda::copy_strided<D, S>(dst.data<D>(), view.data<S>(), dims, view.numel()); });
    CHECK(bytes_of(dst) == bytes_of(view.to(dtype_of<D>::value)));
}

// A patch embedding's permute, (B, 3, H, W) images as (B, H/P, W/P, 3, P, P): runs of P pixels, moved in
// packs of pack_width<D, S>() by copy_strided_packs; bit for bit the CPU's copy.
template <class D, class S>
void check_packed_permute(int64_t P) {
    CAPTURE(sizeof(D));
    CAPTURE(sizeof(S));
    CAPTURE(P);
    const int64_t B = 3, G = 2;
    const Tensor images = test::random_tensor({B, 3, G * P, G * P}, 7, -100, 100).to(dtype_of<S>::value);
    const Tensor view = images.reshape({B, 3, G, P, G, P}).permute({0, 2, 4, 1, 3, 5});
    Tensor dst = empty(view.shape(), dtype_of<D>::value);
    const Strides sd = dst.strides(), ss = view.strides();
    const Strides* all[2] = {&sd, &ss};
    const cuda::CollapsedDims dims = cuda::collapse_dims(view.shape(), all, 2);
    constexpr int V = cuda::pack_width<D, S>();
    cuda::CollapsedDims packs{};
    REQUIRE(cuda::pack_dims(dims, V, packs));
    cuda::emulate_launch(1, 1, kThreads, [&] {
        cuda::copy_strided_packs<D, S>(dst.data<D>(), view.data<S>(), packs, view.numel() / V);
    });
    CHECK(bytes_of(dst) == bytes_of(view.to(dtype_of<D>::value)));
}

}  // namespace

TEST_SUITE("cuda") {
    TEST_CASE("strided copies in packs: a permute's runs of whole packs, bit for bit; other views refused") {
        check_packed_permute<float, float>(16);  // packs of 4, four a run (ViT-B/16's patches)
        check_packed_permute<bf16, bf16>(16);    // packs of 8
        check_packed_permute<bf16, float>(8);    // a cast on the way: packs of 4
        check_packed_permute<float, uint8_t>(4);
        // refused: a run shorter than a pack, a run not contiguous, a broadcast last dim, an odd outer stride
        auto packable = [](const Tensor& view, const Shape& shape, int V) {
            const Strides sd = contiguous_strides(shape),
                          ss = broadcast_strides(view.shape(), view.strides(), shape);
            const Strides* all[2] = {&sd, &ss};
            cuda::CollapsedDims packs{};
            return cuda::pack_dims(cuda::collapse_dims(shape, all, 2), V, packs);
        };
        const Tensor t = empty({6, 8, 12});
        CHECK(packable(t.permute({1, 0, 2}), {8, 6, 12}, 4));
        CHECK_FALSE(packable(t.permute({1, 0, 2}), {8, 6, 12}, 8));  // 12 is not whole packs of 8
        CHECK_FALSE(packable(t.permute({0, 2, 1}), {6, 12, 8}, 4));  // the last dim has stride 12
        CHECK_FALSE(packable(empty({6, 1}), {6, 8}, 4));             // broadcast along the run
        CHECK_FALSE(packable(t.narrow(2, 0, 8), {6, 8, 8}, 8));      // rows 12 apart: packs of 8 straddle
    }

    TEST_CASE("offsets_of: the 32-bit indices by multiplies give the 64-bit divisions' offsets") {
        // A patch embedding's permuted view (6 dims, 5 after collapsing) and a broadcast operand.
        const Tensor view = empty({2, 3, 4, 5, 6, 7}).permute({0, 2, 4, 1, 3, 5});
        const Shape shape = view.shape();
        const Strides out = contiguous_strides(shape), in = view.strides(),
                      bias = broadcast_strides({3, 1, 7}, {7, 7, 1}, shape);
        const Strides* all[3] = {&out, &in, &bias};
        cuda::CollapsedDims narrow = cuda::collapse_dims(shape, all, 3), wide = narrow;
        REQUIRE(narrow.index32);
        wide.index32 = false;
        int64_t mismatches = 0;
        for (int64_t i = 0; i < shape_numel(shape); ++i) {
            const cuda::Offsets<3> a = cuda::offsets_of<3>(narrow, i), b = cuda::offsets_of<3>(wide, i);
            for (int k = 0; k < 3; ++k) mismatches += a.at[k] != b.at[k];
        }
        CHECK(mismatches == 0);
        CHECK(cuda::offsets_of<3>(narrow, 5).at[1] == 5 * in[5]);  // the last dim moves fastest
    }

    TEST_CASE("copies between dtypes on emulated threads equal Tensor::to on the CPU, bit for bit") {
        // whole packs over two grid-stride turns (4805 bf16: 600 packs for 512 threads) or several (16389),
        // and a tail; no pack at all (3)
        for (int64_t n : {int64_t(4805), int64_t(16389), int64_t(3)}) {
            check_casts<bf16, float>(n);
            check_casts<float, bf16>(n);
            check_casts<float, uint8_t>(n);
            check_casts<double, float>(n);
            check_casts<int64_t, float>(n);
        }
    }

    TEST_CASE("pointwise kernels on emulated threads equal the CPU's map, bit for bit") {
        for (int64_t n : {int64_t(4805), int64_t(16389), int64_t(3)}) {  // as the copies
            check_vectorized<PW::Add, float>(n, false);
            check_vectorized<PW::Add, bf16>(n, false);
            check_vectorized<PW::Gelu, float>(n, true);
            check_vectorized<PW::Gelu, bf16>(n, true);
            check_vectorized<PW::Greater, float>(n, false);
            check_vectorized<PW::Greater, bf16>(n, false);
        }
        check_strided<PW::Mul, float>();
        check_strided<PW::Mul, bf16>();
        check_strided<PW::Greater, bf16>();
        for (int64_t n : {int64_t(4805), int64_t(3)}) {
            check_mixed<PW::Add, float, bf16>(n);
            check_mixed<PW::Add, bf16, float>(n);
            check_mixed<PW::Sub, float, bf16>(n);
            check_mixed<PW::Sub, bf16, float>(n);
        }
    }
}

}  // namespace aclip
