// layer_norm.cu: fused LayerNorm over the last dim. Forward: a warp per row computes the mean, the variance
// of the centred values (two passes, as the CPU does, so no cancellation) and the normalised, scaled output,
// and saves mean and 1/std for backward. Backward: a warp per row computes the input gradient and, from the
// same read of x and g, adds its rows' terms of the weight and bias gradients into its columns' sums; the
// blocks' sums are added in block order by a second pass (deterministic). Rows too long to hold take the
// column sums of column_sums.cuh instead, reading x and g again.
// A warp reads its row once, in 16-byte packs with all loads issued together, and keeps it in registers,
// packed, for its passes (RowSlice; up to 8 packs a lane: every row of the models); rows of at most 2 KB are
// taken two a warp, both rows' loads issued together (held_rows_per_warp). History, measured on
// an H200 (docs/GPU_STATUS.md): the first version held rows as f32 read one element a load (0.101 ms
// forward at (50432, 768) bf16); the next re-read the row in each pass, one 16-byte pack a loop iteration
// (0.075 forward, 0.189 backward with the column sums a separate read: 49% and 29% of bandwidth). Its PTX
// showed why: nvcc unrolled that loop by 4 behind a remainder loop of single iterations, so a 768-wide row
// (3 packs a lane) waited 3 memory round trips in a row before its first sum.
#include <algorithm>

#include "engine/cuda/cuda_ops.h"
#include "engine/cuda/device_util.cuh"
#include "engine/cuda/layer_norm.cuh"

namespace aclip::cuda {

using namespace layer_norm_kernels;

namespace {

// fn(TypeTag<T>, TypeTag<Y>) for the input dtype x and the output (or output gradient) dtype y: the same,
// or f32 -> bf16 (engine/ops/norm.cpp checks the pair).
template <class F>
void dispatch_pair(DType x, DType y, const char* op, F&& fn) {
    if (x == DType::F32 && y == DType::BF16) return fn(TypeTag<float>{}, TypeTag<bf16>{});
    dispatch_gpu_float(x, op, [&](auto tag) { fn(tag, tag); });
}

// Calls fn(integral_constant<V>, integral_constant<P>): V = 16-byte packs of T where D and the pointers
// allow, P = packs_for_row (launch.h); single elements (V = 1) always take P = 8, slices of 256.
template <class T, class F>
void dispatch_packs(int64_t D, bool aligned, F&& fn) {
    constexpr int V = vector_width<T>();
    const std::integral_constant<int, V> v;
    if (!aligned || D % V != 0) return fn(std::integral_constant<int, 1>{}, std::integral_constant<int, 8>{});
    switch (packs_for_row(D, V)) {
        case 1:
            return fn(v, std::integral_constant<int, 1>{});
        case 2:
            return fn(v, std::integral_constant<int, 2>{});
        case 3:
            return fn(v, std::integral_constant<int, 3>{});
        case 4:
            return fn(v, std::integral_constant<int, 4>{});
        case 6:
            return fn(v, std::integral_constant<int, 6>{});
        default:
            return fn(v, std::integral_constant<int, 8>{});
    }
}

// fn(integral_constant<K>): K = held_rows_per_warp rows a warp where the row is held whole, else 1. Below
// 8 packs a row always fits (packs_for_row picks the smallest P that holds it), so only P = 8 instantiates
// both: the other P's launches for long rows could never run, and each doubled the kernels to compile.
template <class T, int V, int P, class F>
void with_rows_per_warp(int64_t D, F&& fn) {
    if constexpr (P == 8) {
        if (D > 32 * V * P) return fn(std::integral_constant<int, 1>{});
    }
    fn(std::integral_constant<int, held_rows_per_warp<T, V, P>()>{});
}

AC_REGISTER_KERNEL("layer_norm_forward");
AC_REGISTER_KERNEL("layer_norm_backward");

template <class T>
const T* ptr_or_null(const Tensor& t) {
    return t.defined() ? static_cast<const T*>(t.raw_data()) : nullptr;
}

}  // namespace

void layer_norm_forward(const Tensor& x, const Tensor& w, const Tensor& b, double eps, const Tensor& y,
                        const Tensor& mean, const Tensor& rstd) {
    const int64_t D = x.size(-1), R = D ? x.numel() / D : 0;
    if (R == 0) return;
    dispatch_pair(x.dtype(), y.dtype(), "layer_norm", [&](auto tag, auto ytag) {
        using T = typename decltype(tag)::type;
        using Y = typename decltype(ytag)::type;
        const T *px = static_cast<const T*>(x.raw_data()), *pw = ptr_or_null<T>(w), *pb = ptr_or_null<T>(b);
        Y* py = static_cast<Y*>(y.raw_data());
        dispatch_packs<T>(D, all_aligned({px, pw, pb, py}, 16), [&](auto v, auto p) {
            constexpr int V = decltype(v)::value, P = decltype(p)::value;
            auto launch = [&](auto rows_per_warp) {
                constexpr int K = decltype(rows_per_warp)::value;
                layer_norm_forward_kernel<T, Y, V, P, K>
                    <<<(R + K * kRowsPerBlock - 1) / (K * kRowsPerBlock), kThreads>>>(
                        px, pw, pb, py, static_cast<float*>(mean.raw_data()),
                        static_cast<float*>(rstd.raw_data()), R, D, static_cast<float>(eps));
            };
            with_rows_per_warp<T, V, P>(D, launch);
        });
    });
    AC_CUDA_LAUNCH_CHECK("layer_norm_forward");
}

void layer_norm_backward(const Tensor& g, const Tensor& x, const Tensor& w, const Tensor& mean,
                         const Tensor& rstd, const Tensor& dx, bool accumulate, const Tensor& dw,
                         const Tensor& db, const Tensor& dx_low) {
    const int64_t D = x.size(-1), R = D ? x.numel() / D : 0;
    if (R == 0) return;
    AC_CHECK(!accumulate || dx.defined(),
             "layer_norm_backward: accumulating into an undefined input gradient");
    dispatch_pair(x.dtype(), g.dtype(), "layer_norm_backward", [&](auto tag, auto gtag) {
        using T = typename decltype(tag)::type;
        using G = typename decltype(gtag)::type;
        const G* pg = static_cast<const G*>(g.raw_data());
        const T *px = static_cast<const T*>(x.raw_data()), *pw = ptr_or_null<T>(w);
        const float* pm = static_cast<const float*>(mean.raw_data());
        const float* pr = static_cast<const float*>(rstd.raw_data());
        T* pdx = dx.defined() ? static_cast<T*>(dx.raw_data()) : nullptr;
        bf16* plow = dx_low.defined() ? static_cast<bf16*>(dx_low.raw_data()) : nullptr;
        T* const outs[2] = {dw.defined() ? static_cast<T*>(dw.raw_data()) : nullptr,
                            db.defined() ? static_cast<T*>(db.raw_data()) : nullptr};
        const bool params = outs[0] || outs[1];
        bool params_done = false;
        dispatch_packs<T>(D, all_aligned({pg, px, pw, pdx, plow}, 16), [&](auto v, auto p) {
            constexpr int V = decltype(v)::value, P = decltype(p)::value;
            const bool held = D <= 32 * V * P;
            auto launch = [&](auto rows_per_warp, auto adds) {
                constexpr int K = decltype(rows_per_warp)::value;
                constexpr bool kAdds = decltype(adds)::value;
                const int64_t row_blocks = (R + K * kRowsPerBlock - 1) / (K * kRowsPerBlock);
                if (params && held) {  // all three gradients from one read of x and g
                    auto kernel = layer_norm_backward_kernel<T, G, V, P, true, kAdds, K>;
                    static const int64_t wave = resident_blocks(kernel, kThreads);
                    const int64_t blocks = std::min(row_blocks, wave);
                    Tensor partial = empty({2, blocks, D}, DType::F32, Device::CUDA);
                    float* pp = static_cast<float*>(partial.raw_data());
                    kernel<<<blocks, kThreads>>>(pg, px, pw, pm, pr, pdx, plow, pp, R, D);
                    AC_CUDA_LAUNCH_CHECK("layer_norm_backward");
                    add_all_chunks(pp, outs, D, blocks, "layer_norm_backward");
                    params_done = true;
                } else if (pdx) {
                    layer_norm_backward_kernel<T, G, V, P, false, kAdds, K>
                        <<<row_blocks, kThreads>>>(pg, px, pw, pm, pr, pdx, plow, nullptr, R, D);
                }
            };
            auto launch_rows = [&](auto adds) {
                with_rows_per_warp<T, V, P>(D, [&](auto rows_per_warp) { launch(rows_per_warp, adds); });
            };
            if (accumulate)
                launch_rows(std::true_type{});
            else
                launch_rows(std::false_type{});
        });
        AC_CUDA_LAUNCH_CHECK("layer_norm_backward");
        if (!params || params_done) return;
        // Rows too long to hold: the weight and bias gradients as column sums over x and g read again.
        constexpr int V = vector_width<T>();
        auto launch = [&](auto kernel, int vector) {
            run_column_sums(D, R, vector, outs, "layer_norm_backward",
                            [&](dim3 grid, float* partial, int64_t chunks) {
                                kernel<<<grid, columns::kThreads>>>(pg, px, pm, pr, partial, outs[0], outs[1],
                                                                    R, D, chunks);
                            });
        };
        if (D % V == 0 && all_aligned({pg, px}, 16))
            launch(layer_norm_param_kernel<T, G, V>, V);
        else
            launch(layer_norm_param_kernel<T, G, 1>, 1);
    });
}

}  // namespace aclip::cuda
