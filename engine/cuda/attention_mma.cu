// attention_mma.cu: flash attention on the tensor cores, for bf16 inputs and head dims 32 and 64
// (FlashAttention-2's algorithm with mma.sync; the f32 kernels of attention.cu are its specification).
// A block of four warps owns 64 rows (queries in the forward and dQ kernels, keys in the dK/dV kernel);
// each warp keeps its 16 rows of the fixed operands as A fragments in registers and streams 64-row tiles of
// the other side through shared memory, in two stages: the next tiles are copied (cp.async) while the
// current ones are multiplied. A warp multiplies only the tile rows that can reach its own (no products with
// padding, nor, causal, with keys past its last query). Scores and probabilities live only in registers: an
// mma's f32 result, rounded to bf16, is the A fragment of the next product (mma.cuh). Softmax runs in base
// 2 (the scale folded with log2 e into one multiply); the forward saves each row's log-sum-exp (natural log,
// as attention.cu's kernels do) for the backward. There the dK/dV kernel recomputes the probabilities and
// writes the scores' gradient dS (bf16, keys as rows) to a workspace, from which the dQ kernel takes
// dQ = scale dS K with one product a tile, instead of recomputing S, P and dP with three. The kernels are in
// attention_mma.cuh, which tests also compile for the CPU's emulated warps; this file launches them.
#include <cstdlib>
#include <string>
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

// The kernels' view of a (B, H, T, D) tensor: bf16, head dim 32 or 64, the last dim contiguous, the other
// strides whole 16-byte rows, the data 16-byte aligned. False when the tensor is not such a view, or when
// ACLIP_TENSOR_CORE_ATTENTION=0 turns the kernels off: then no caller launches them.
template <class P>
bool heads_of(const Tensor& t, Heads<P>& h) {
    if (!tensor_core_attention() || t.dtype() != DType::BF16 || t.dim() != 4 ||
        (t.size(3) != 32 && t.size(3) != 64) || t.strides()[3] != 1 || !all_aligned({t.raw_data()}, 16))
        return false;
    int64_t s[3];
    for (int d = 0; d < 3; ++d) {
        s[d] = t.size(d) == 1 ? 0 : t.strides()[d];  // the stride of a size-1 dim is never used
        if (s[d] % 8 != 0) return false;
    }
    h = {static_cast<P>(t.raw_data()), s[0], s[1], s[2]};
    return true;
}

constexpr int64_t kMaxGridY = 65535;  // the grid's y is the (batch, head) index

template <class Fn>
void with_head_dim(int64_t D, Fn&& fn) {
    if (D == 32) return fn(std::integral_constant<int, 32>{});
    return fn(std::integral_constant<int, 64>{});  // heads_of admits 32 and 64 only
}

}  // namespace

bool tensor_core_attention() {
    const char* v = std::getenv("ACLIP_TENSOR_CORE_ATTENTION");  // read each time: tests turn it off and on
    return !(v && std::string(v) == "0");
}

bool flash_attention_takes_views(const Tensor& q, const Tensor& k, const Tensor& v) {
    Heads<const uint16_t*> h;
    return q.size(0) * q.size(1) <= kMaxGridY && heads_of(q, h) && heads_of(k, h) && heads_of(v, h);
}

bool flash_forward_mma(const Tensor& q, const Tensor& k, const Tensor& v, bool causal, const Tensor& out,
                       const Tensor& lse) {
    Heads<const uint16_t*> hq, hk, hv;
    Heads<uint16_t*> ho;
    if (q.size(0) * q.size(1) > kMaxGridY || !heads_of(q, hq) || !heads_of(k, hk) || !heads_of(v, hv) ||
        !heads_of(out, ho))
        return false;
    const int64_t H = q.size(1), BH = q.size(0) * H, Tq = q.size(2), Tk = k.size(2), D = q.size(3);
    const float scale_log2 = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D))) * kLog2e;
    if (BH * Tq == 0) return true;
    with_head_dim(D, [&](auto dtag) {
        constexpr int HD = decltype(dtag)::value;
        forward_kernel<HD><<<dim3((Tq + kTileRows - 1) / kTileRows, BH), kThreads>>>(
            hq, hk, hv, ho, static_cast<float*>(lse.raw_data()), H, Tq, Tk, scale_log2, causal);
    });
    AC_CUDA_LAUNCH_CHECK("flash_attention_forward_mma");
    return true;
}

bool flash_backward_mma(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                        const Tensor& lse, const Tensor& g, bool causal, const Tensor& dq, const Tensor& dk,
                        const Tensor& dv) {
    Heads<const uint16_t*> hq, hk, hv, ho, hg;
    Heads<uint16_t*> hdq, hdk, hdv;
    if (q.size(0) * q.size(1) > kMaxGridY || !heads_of(q, hq) || !heads_of(k, hk) || !heads_of(v, hv) ||
        !heads_of(out, ho) || !heads_of(g, hg) || !heads_of(dq, hdq) || !heads_of(dk, hdk) ||
        !heads_of(dv, hdv))
        return false;
    const int64_t H = q.size(1), BH = q.size(0) * H, Tq = q.size(2), Tk = k.size(2), D = q.size(3);
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
    Tensor delta = empty({BH * Tq}, DType::F32, Device::CUDA);  // (B, H, Tq)
    // dS^T, (B, H, Tk, Tq rounded up to 64): 159 MB for a ViT-B/16 layer at batch 512 of 101 tokens
    Tensor ds_t = empty({BH * Tk * score_columns(Tq)}, DType::BF16, Device::CUDA);
    const float* pl = static_cast<const float*>(lse.raw_data());
    float* pd = static_cast<float*>(delta.raw_data());
    uint16_t* pds = static_cast<uint16_t*>(ds_t.raw_data());
    with_head_dim(D, [&](auto dtag) {
        constexpr int HD = decltype(dtag)::value;
        if (BH * Tq > 0) {
            delta_kernel<HD><<<delta_blocks<HD>(BH * Tq), kDeltaThreads>>>(ho, hg, pd, H, Tq, BH * Tq);
            AC_CUDA_LAUNCH_CHECK("flash_attention_backward_mma");
        }
        if (BH * Tk > 0) {
            backward_kv_kernel<HD><<<dim3((Tk + kTileRows - 1) / kTileRows, BH), kThreads>>>(
                hq, hk, hv, hg, pl, pd, hdk, hdv, pds, H, Tq, Tk, scale * kLog2e, scale, causal);
            AC_CUDA_LAUNCH_CHECK("flash_attention_backward_mma");
        }
        if (BH * Tq > 0) {
            backward_q_kernel<HD><<<dim3((Tq + kTileRows - 1) / kTileRows, BH), kThreads>>>(
                hk, pds, hdq, H, Tq, Tk, scale, causal);
            AC_CUDA_LAUNCH_CHECK("flash_attention_backward_mma");
        }
    });
    return true;
}

}  // namespace aclip::cuda
