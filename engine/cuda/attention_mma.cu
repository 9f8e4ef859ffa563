// attention_mma.cu: flash attention on the tensor cores, for bf16 inputs and head dims 32 and 64
// (FlashAttention-2's algorithm with mma.sync; the f32 kernels of attention.cu are its specification).
// A block of four warps owns 64 rows (queries in the forward and dQ kernels, keys in the dK/dV kernel);
// each warp keeps its 16 rows of the fixed operands as A fragments in registers and streams 64-row tiles of
// the other side through shared memory. Scores, probabilities and their gradients live only in registers:
// an mma's f32 result, rounded to bf16, is the A fragment of the next product (mma.cuh). Softmax runs in
// base 2 (the scale folded with log2 e into one multiply); the forward saves each row's log-sum-exp
// (natural log, as attention.cu's kernels do) for the backward, which recomputes the probabilities.
// The kernels are in attention_mma.cuh, which tests also compile for the CPU's emulated warps; this file
// launches them.
#include <type_traits>

#include "engine/cuda/attention_mma.cuh"
#include "engine/cuda/attention_mma.h"
#include "engine/cuda/cuda_check.cuh"
#include "engine/cuda/device_util.cuh"

namespace aclip::cuda {

namespace {

using namespace flash_mma;

AC_REGISTER_KERNEL("flash_attention_forward_mma");
AC_REGISTER_KERNEL("flash_attention_backward_mma");

const uint16_t* bits(const Tensor& t) {
    return static_cast<const uint16_t*>(t.raw_data());
}

uint16_t* bits_out(const Tensor& t) {
    return static_cast<uint16_t*>(t.raw_data());
}

template <class Fn>
bool with_head_dim(int64_t D, Fn&& fn) {
    if (D == 32) return fn(std::integral_constant<int, 32>{}), true;
    if (D == 64) return fn(std::integral_constant<int, 64>{}), true;
    return false;
}

}  // namespace

bool flash_forward_mma(const Tensor& q, const Tensor& k, const Tensor& v, bool causal, const Tensor& out,
                       const Tensor& lse) {
    if (q.dtype() != DType::BF16 ||
        !all_aligned({q.raw_data(), k.raw_data(), v.raw_data(), out.raw_data()}, 16))
        return false;
    const int64_t BH = q.size(0) * q.size(1), Tq = q.size(2), Tk = k.size(2), D = q.size(3);
    const float scale_log2 = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D))) * kLog2e;
    return with_head_dim(D, [&](auto dtag) {
        constexpr int HD = decltype(dtag)::value;
        if (BH * Tq == 0) return;
        forward_kernel<HD><<<dim3((Tq + kTileRows - 1) / kTileRows, BH), kThreads>>>(
            bits(q), bits(k), bits(v), bits_out(out), static_cast<float*>(lse.raw_data()), Tq, Tk, scale_log2,
            causal);
        AC_CUDA_LAUNCH_CHECK("flash_attention_forward_mma");
    });
}

bool flash_backward_mma(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g, const Tensor& lse,
                        const Tensor& delta, bool causal, const Tensor& dq, const Tensor& dk,
                        const Tensor& dv) {
    if (q.dtype() != DType::BF16 || !all_aligned({q.raw_data(), k.raw_data(), v.raw_data(), g.raw_data(),
                                                  dq.raw_data(), dk.raw_data(), dv.raw_data()},
                                                 16))
        return false;
    const int64_t BH = q.size(0) * q.size(1), Tq = q.size(2), Tk = k.size(2), D = q.size(3);
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
    return with_head_dim(D, [&](auto dtag) {
        constexpr int HD = decltype(dtag)::value;
        const float* pl = static_cast<const float*>(lse.raw_data());
        const float* pd = static_cast<const float*>(delta.raw_data());
        if (BH * Tk > 0) {
            backward_kv_kernel<HD><<<dim3((Tk + kTileRows - 1) / kTileRows, BH), kThreads>>>(
                bits(q), bits(k), bits(v), bits(g), pl, pd, bits_out(dk), bits_out(dv), Tq, Tk,
                scale * kLog2e, scale, causal);
            AC_CUDA_LAUNCH_CHECK("flash_attention_backward_mma");
        }
        if (BH * Tq > 0) {
            backward_q_kernel<HD><<<dim3((Tq + kTileRows - 1) / kTileRows, BH), kThreads>>>(
                bits(q), bits(k), bits(v), bits(g), pl, pd, bits_out(dq), Tq, Tk, scale * kLog2e, scale,
                causal);
            AC_CUDA_LAUNCH_CHECK("flash_attention_backward_mma");
        }
    });
}

}  // namespace aclip::cuda
