// test_reduce_emulated.cpp: the sum kernels of engine/cuda/reduce.cuh, compiled for the CPU and run on
// emulated threads (engine/cuda/warp_emulation.h) against the CPU's sum over the middle dim of (O, R, I):
// column sums (16-byte packs and single columns, one row chunk and several, columns of several o), a warp
// per row, and blocks per long row, in f32 and bf16.
#include <doctest/doctest.h>

#include <vector>

#include "engine/cuda/launch.h"
#include "engine/cuda/reduce.cuh"  // first: it brings the emulation's stand-ins for CUDA's keywords
#include "engine/ops/ops.h"
#include "test_util.h"

namespace aclip {

namespace {

using namespace cuda::reduce_kernels;

// The sums of chunks of partial (chunks, n), as run_column_sums and reduce.cu finish them.
template <class T>
void finish(const std::vector<float>& partial, T* out, int64_t n, int64_t chunks) {
    cuda::emulate_launch(static_cast<unsigned>(cuda::columns::add_chunks_blocks(n)), 1,
                         cuda::columns::kThreads,
                         [&] { cuda::columns::add_chunks<T>(partial.data(), out, n, chunks); });
}

// Out: the output's type (T, or f32 from bf16: the sums then unrounded, within f32's order error).
template <class T, int V, class Out = T>
void check_columns(int64_t O, int64_t R, int64_t I) {
    CAPTURE(sizeof(T));
    CAPTURE(sizeof(Out));
    CAPTURE(V);
    CAPTURE(O);
    CAPTURE(R);
    CAPTURE(I);
    const DType dt = dtype_of<T>::value;
    const Tensor x = test::random_tensor({O, R, I}, 7).to(dt);
    const int64_t n = O * I, blocks = (n + 32 * V - 1) / (32 * V), chunks = cuda::column_chunks(blocks, R);
    Tensor out = empty({O, I}, dtype_of<Out>::value);
    std::vector<float> partial(static_cast<size_t>(chunks * n));
    cuda::emulate_launch(
        static_cast<unsigned>(blocks), static_cast<unsigned>(chunks), cuda::columns::kThreads, [&] {
            sum_columns_kernel<T, V, Out>(x.data<T>(), partial.data(), out.data<Out>(), n, R, I, chunks);
        });
    if (chunks > 1) finish<Out>(partial, out.data<Out>(), n, chunks);
    // f32: sums of up to a few hundred terms in another order; bf16: the result rounded to bf16.
    CHECK(test::norm_rel_error(out.to(DType::F32), sum(x.to(DType::F32), {1})) <
          (sizeof(Out) == 2 ? 1e-2 : 1e-5));
}

template <class T, class Out = T>
void check_rows(int64_t O, int64_t R) {
    CAPTURE(sizeof(T));
    CAPTURE(sizeof(Out));
    CAPTURE(O);
    CAPTURE(R);
    const DType dt = dtype_of<T>::value;
    const Tensor x = test::random_tensor({O, R}, 8).to(dt);
    Tensor out = empty({O}, dtype_of<Out>::value);
    const int64_t chunks = 3;  // a long row cut among three blocks
    if (R >= 1000) {
        std::vector<float> partial(static_cast<size_t>(chunks * O));
        cuda::emulate_launch(static_cast<unsigned>(chunks), static_cast<unsigned>(O), kThreads,
                             [&] { sum_rows_partial<T>(x.data<T>(), partial.data(), O, R, chunks); });
        finish<Out>(partial, out.data<Out>(), O, chunks);
    } else {
        cuda::emulate_launch(static_cast<unsigned>((O + 7) / 8), 1, kThreads,
                             [&] { sum_rows_kernel<T, Out>(x.data<T>(), out.data<Out>(), O, R); });
    }
    CHECK(test::norm_rel_error(out.to(DType::F32), sum(x.to(DType::F32), {1})) <
          (sizeof(Out) == 2 ? 1e-2 : 1e-5));
}

}  // namespace

TEST_SUITE("cuda") {
    TEST_CASE("sum kernels on emulated threads equal the CPU's sum") {
        check_columns<float, 4>(1, 50, 24);  // a bias gradient: packs, one chunk
        check_columns<bf16, 8>(1, 300, 24);  // several chunks, then add_chunks
        check_columns<float, 1>(3, 40, 5);   // single columns; a lane's neighbours in another o
        check_columns<bf16, 1>(2, 70, 300);  // two blocks of columns across two o, several chunks
        check_rows<float>(13, 70);           // a warp per row
        check_rows<bf16>(9, 33);
        check_rows<float>(2, 5000);  // blocks per long row, partial sums, add_chunks
        // bf16 terms summed into f32 (a bias gradient under autocast): each path
        check_columns<bf16, 8, float>(1, 300, 24);
        check_columns<bf16, 1, float>(2, 70, 300);
        check_rows<bf16, float>(9, 33);
        check_rows<bf16, float>(2, 5000);
    }
}

}  // namespace aclip
