// attention.cu: fused scaled-dot-product attention. The (Tq, Tk) score matrix never reaches device
// memory: forward streams key/value tiles through shared memory and keeps a running max and sum per
// query (the online softmax of FlashAttention), saving only the log-sum-exp of each row for backward.
// Backward recomputes the probabilities tile by tile, FlashAttention-2 style, in two kernels without
// atomics: one owns key rows (dK, dV), the other query rows (dQ). Each thread owns one row and keeps
// its vectors in registers, in f32. These are the kernels for f32 inputs and the specification of the
// tensor-core kernels that bf16 inputs run (attention_mma.cu). Head dims 32 and 64.
// Also here: the CLS row of the attention probabilities, which the attentive mask reads from the EMA
// model and which a fused kernel cannot return.
#include "engine/cuda/attention.cuh"
#include "engine/cuda/attention_mma.h"
#include "engine/cuda/cuda_ops.h"
#include "engine/cuda/device_util.cuh"

namespace aclip::cuda {

namespace {

using namespace attention_kernels;

AC_REGISTER_KERNEL("flash_attention_forward");
AC_REGISTER_KERNEL("flash_attention_backward");
AC_REGISTER_KERNEL("attention_cls_probs");

template <class Fn>
void dispatch_head_dim(int64_t D, Fn&& fn) {
    if (D == 32)
        fn(std::integral_constant<int, 32>{});
    else if (D == 64)
        fn(std::integral_constant<int, 64>{});
    else
        AC_FAIL("flash attention: head dim ", D, " is not supported (32 or 64)");
}

}  // namespace

bool flash_attention_supports(int64_t head_dim) {
    return head_dim == 32 || head_dim == 64;
}

void flash_attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, bool causal,
                             const Tensor& out, const Tensor& lse) {
    const int64_t BH = q.size(0) * q.size(1), Tq = q.size(2), Tk = k.size(2), D = q.size(3);
    if (BH * Tq == 0 || flash_forward_mma(q, k, v, causal, out, lse)) return;
    AC_CHECK(q.is_contiguous() && k.is_contiguous() && v.is_contiguous() && out.is_contiguous(),
             "flash_attention_forward: the f32 kernels take contiguous tensors, got ", q.desc(), ", ",
             out.desc());
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
    dispatch_gpu_float(q.dtype(), "flash_attention", [&](auto tag) {
        using T = typename decltype(tag)::type;
        dispatch_head_dim(D, [&](auto dtag) {
            constexpr int HD = decltype(dtag)::value;
            dim3 grid((Tq + kRows - 1) / kRows, BH);
            flash_forward_kernel<HD, T>
                <<<grid, kRows>>>(static_cast<const T*>(q.raw_data()), static_cast<const T*>(k.raw_data()),
                                  static_cast<const T*>(v.raw_data()), static_cast<T*>(out.raw_data()),
                                  static_cast<float*>(lse.raw_data()), Tq, Tk, scale, causal);
        });
    });
    AC_CUDA_LAUNCH_CHECK("flash_attention_forward");
}

void flash_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                              const Tensor& lse, const Tensor& g, bool causal, const Tensor& dq,
                              const Tensor& dk, const Tensor& dv) {
    const int64_t BH = q.size(0) * q.size(1), Tq = q.size(2), Tk = k.size(2), D = q.size(3);
    if (BH == 0 || flash_backward_mma(q, k, v, out, lse, g, causal, dq, dk, dv)) return;
    AC_CHECK(q.is_contiguous() && k.is_contiguous() && v.is_contiguous() && out.is_contiguous() &&
                 g.is_contiguous() && dq.is_contiguous() && dk.is_contiguous() && dv.is_contiguous(),
             "flash_attention_backward: the f32 kernels take contiguous tensors, got ", q.desc(), ", ",
             g.desc());
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
    Tensor delta = empty({BH * Tq}, DType::F32, Device::CUDA);
    dispatch_gpu_float(q.dtype(), "flash_attention_backward", [&](auto tag) {
        using T = typename decltype(tag)::type;
        dispatch_head_dim(D, [&](auto dtag) {
            constexpr int HD = decltype(dtag)::value;
            const T* pq = static_cast<const T*>(q.raw_data());
            const T* pk = static_cast<const T*>(k.raw_data());
            const T* pv = static_cast<const T*>(v.raw_data());
            const T* pg = static_cast<const T*>(g.raw_data());
            const float* pl = static_cast<const float*>(lse.raw_data());
            float* pd = static_cast<float*>(delta.raw_data());
            if (BH * Tq > 0) {
                flash_delta_kernel<HD, T>
                    <<<(BH * Tq + 255) / 256, 256>>>(static_cast<const T*>(out.raw_data()), pg, pd, BH * Tq);
                AC_CUDA_LAUNCH_CHECK("flash_attention_backward");
            }
            if (Tk > 0) {
                flash_backward_kv_kernel<HD, T><<<dim3((Tk + kRows - 1) / kRows, BH), kRows>>>(
                    pq, pk, pv, pg, pl, pd, static_cast<T*>(dk.raw_data()), static_cast<T*>(dv.raw_data()),
                    Tq, Tk, scale, causal);
                AC_CUDA_LAUNCH_CHECK("flash_attention_backward");
            }
            if (Tq > 0) {
                flash_backward_q_kernel<HD, T><<<dim3((Tq + kRows - 1) / kRows, BH), kRows>>>(
                    pq, pk, pv, pg, pl, pd, static_cast<T*>(dq.raw_data()), Tq, Tk, scale, causal);
                AC_CUDA_LAUNCH_CHECK("flash_attention_backward");
            }
        });
    });
}

void attention_cls_probs(const Tensor& q, const Tensor& k, const Tensor& probs) {
    const int64_t H = q.size(1), BH = q.size(0) * H, Tk = k.size(2), D = q.size(3);
    AC_CHECK(q.strides()[3] == 1 && k.strides()[3] == 1, "attention_cls_probs: q ", q.desc(), " and k ",
             k.desc(), " need a contiguous last dim");
    const ViewStrides qs{q.strides()[0], q.strides()[1], q.strides()[2]},
        ks{k.strides()[0], k.strides()[1], k.strides()[2]};
    if (BH * Tk == 0) return;
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
    AC_CHECK_HINT(Tk <= kMaxClsKeys && D <= kMaxClsHeadDim, "use fewer patches per image, or smaller heads",
                  "attention_cls_probs: ", Tk, " keys of ", D, " dims; the kernel holds at most ",
                  kMaxClsKeys, " scores and ", kMaxClsHeadDim, " query dims in shared memory");
    dispatch_gpu_float(q.dtype(), "attention_cls_probs", [&](auto tag) {
        using T = typename decltype(tag)::type;
        constexpr int V = vector_width<T>();
        const T *pq = static_cast<const T*>(q.raw_data()), *pk = static_cast<const T*>(k.raw_data());
        T* pp = static_cast<T*>(probs.raw_data());
        const bool packs =
            D % V == 0 && ks.batch % V == 0 && ks.head % V == 0 && ks.row % V == 0 && all_aligned({pk}, 16);
        if (packs)
            cls_probs_kernel<T, V><<<BH, 256>>>(pq, qs, pk, ks, pp, H, Tk, D, cls_group_lanes(D, V), scale);
        else
            cls_probs_kernel<T, 1><<<BH, 256>>>(pq, qs, pk, ks, pp, H, Tk, D, cls_group_lanes(D, 1), scale);
    });
    AC_CUDA_LAUNCH_CHECK("attention_cls_probs");
}

}  // namespace aclip::cuda
