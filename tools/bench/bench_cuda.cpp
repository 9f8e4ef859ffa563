// bench_cuda.cpp: times the CUDA backend's kernels on ViT-B/16 A-CLIP shapes (batch 256, 197 tokens,
// width 768): the bf16 GEMMs of a block (and fc2 added into the f32 residual stream, fc1's backward, weight
// gradients with and without the bias gradient's epilogue), the memory-bound
// kernels (LayerNorm forward and backward, residual add, GELU, a bias gradient's column sums, softmax,
// AdamW and EMA over 86M parameters), attention forward + backward (the op as models call it, and the
// fused kernels on their own), the teacher's CLS attention rows and the token embedding's backward.
// A large device-to-device copy measures the memory ceiling in the same run. Each case prints
// "name milliseconds flops bytes" (the work it must do: flops for GEMMs and attention, bytes read plus
// written for the rest); tools/bench/bench_cuda_torch.py prints the same cases for PyTorch and
// tools/bench/compare_cuda.sh joins them. Timing: 3 warm-ups, then the median of --iters runs, each
// bracketed by device synchronisations. Inputs are random (never zeros). --warmups 0 --iters 1 runs each
// case's kernels once, for a profiler (tools/gpu_check.sh runs Nsight Compute so).
// Usage: aclip_bench_cuda [--iters N] [--warmups N] [--quick]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/core/storage.h"
#include "engine/cuda/cuda_ops.h"
#include "engine/ops/autocast.h"
#include "engine/ops/ops.h"
#include "tools/bench/random_gpu.h"

using namespace aclip;

namespace {

int g_warmups = 3;

double time_ms(int iters, const std::function<void()>& fn) {
    for (int i = 0; i < g_warmups; ++i) fn();
    cuda::synchronize();
    std::vector<double> ms;
    for (int i = 0; i < iters; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        fn();
        cuda::synchronize();
        ms.push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
}

void report(const char* name, double ms, double flops, double bytes) {
    std::printf("%-24s %10.4f %14.6g %14.6g\n", name, ms, flops, bytes);
    std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
    int iters = 20;
    bool quick = false;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--iters") && i + 1 < argc)
            iters = std::atoi(argv[++i]);
        else if (!std::strcmp(argv[i], "--warmups") && i + 1 < argc)
            g_warmups = std::atoi(argv[++i]);
        else if (!std::strcmp(argv[i], "--quick"))
            quick = true;
        else {
            std::fprintf(stderr, "usage: aclip_bench_cuda [--iters N] [--warmups N] [--quick]\n");
            return 2;
        }
    }
    if (iters < 1 || g_warmups < 0) {
        std::fprintf(stderr, "aclip_bench_cuda: --iters must be at least 1 and --warmups at least 0\n");
        return 2;
    }
    if (cuda_device_count() == 0) {
        std::fprintf(stderr, "aclip_bench_cuda: no CUDA device\n");
        return 1;
    }
    NoGradGuard no_grad;
    std::printf("# device %s\n", cuda::device_name().c_str());
    const int64_t B = quick ? 32 : 256, T = 197, C = 768, N = B * T, H = 12, D = 64;
    const int64_t P = quick ? 8'000'000 : 86'192'640;  // ViT-B/16 CLIP parameters
    const double bf = 2.0, f4 = 4.0;

    {  // the memory ceiling: 1 GiB device-to-device
        Tensor a = random_gpu({1 << 28}, DType::F32, 1), b = empty({1 << 28}, DType::F32, Device::CUDA);
        double ms = time_ms(iters, [&] { b.copy_(a); });
        report("copy_1GiB", ms, 0, 2.0 * a.numel() * f4);
    }
    {  // the patch embedding's permute of a batch of normalised f32 images into (B, 14, 14, 3, 16, 16) rows
        Tensor images = random_gpu({B, 3, 224, 224}, DType::F32, 2);
        report(
            "patchify_copy",
            time_ms(iters,
                    [&] {
                        (void)images.reshape({B, 3, 14, 16, 14, 16}).permute({0, 2, 4, 1, 3, 5}).contiguous();
                    }),
            0, 2.0 * images.numel() * f4);
    }
    {  // GEMMs of one ViT-B/16 block at batch B (bf16 in and out, f32 accumulation)
        struct G {
            const char* name;
            int64_t M, K, Nn;
            DType dt;
        };
        for (G g :
             {G{"gemm_bf16_qkv", N, C, 3 * C, DType::BF16}, G{"gemm_bf16_fc1", N, C, 4 * C, DType::BF16},
              G{"gemm_bf16_fc2", N, 4 * C, C, DType::BF16},
              G{"gemm_bf16_8192", 8192, 8192, 8192, DType::BF16},
              G{"gemm_f32_fc1", N, C, 4 * C, DType::F32}}) {
            Tensor x = random_gpu({g.M, g.K}, g.dt, 2), w = random_gpu({g.K, g.Nn}, g.dt, 3);
            double ms = time_ms(iters, [&] { (void)matmul(x, w); });
            report(g.name, ms, 2.0 * g.M * g.K * g.Nn, 0);
        }
    }
    {  // a block's last product into the f32 residual stream under autocast: fc2 and the add, one pass
        // (linear_add: cuBLASLt's C); PyTorch's twin is its residual + linear, two kernels
        Tensor r = random_gpu({N, C}, DType::F32, 13), h = random_gpu({N, 4 * C}, DType::BF16, 14);
        Tensor w = random_gpu({C, 4 * C}, DType::F32, 15), b = random_gpu({C}, DType::F32, 16);
        AutocastGuard autocast;
        report("fc2_into_residual", time_ms(iters, [&] { (void)linear_add(r, h, w, b); }),
               2.0 * N * 4 * C * C, 0);
    }
    {  // fc1 forward and backward under autocast (f32 masters, bf16 products): with gemm_bf16_fc1 (the
       // forward alone) it rates the backward's products: the input's gradient, and the weight's (K = N)
       // written in f32 with the bias's gradient from its epilogue
        set_grad_enabled(true);
        Tensor x = random_gpu({N, C}, DType::BF16, 20).requires_grad_(),
               w = random_gpu({4 * C, C}, DType::F32, 21).requires_grad_(),
               b = random_gpu({4 * C}, DType::F32, 22).requires_grad_(),
               gy = random_gpu({N, 4 * C}, DType::BF16, 23);
        AutocastGuard autocast;
        report("linear_fc1_fwd_bwd",
               time_ms(iters,
                       [&] {
                           for (Tensor* t : {&x, &w, &b})
                               t->zero_grad();  // no accumulation into earlier ones
                           linear(x, w, b).backward(gy);
                       }),
               3 * 2.0 * N * C * 4 * C, 0);
        set_grad_enabled(false);
    }
    {  // weight gradients (K = N rows, f32 out as the f32 masters take them) of qkv and of the attention's
       // output projection, plain and with the bias gradient from cuBLASLt's BGRADB epilogue: whether the
       // epilogue costs the product its rate (the step's "with the bias gradient" products ran ~580 TFLOP/s
       // where the forward's shapes run 664-779). PyTorch's twin: the product, and then the column sums.
        for (const int64_t out : {3 * C, C}) {
            Tensor gy = random_gpu({N, out}, DType::BF16, 24), x = random_gpu({N, C}, DType::BF16, 25);
            Tensor gw = empty({out, C}, DType::F32, Device::CUDA),
                   gb = empty({out}, DType::F32, Device::CUDA);
            const cuda::GemmOperand a{&gy, true, out, 0}, b{&x, false, C, 0};  // gyᵀ (out, N) @ x (N, C)
            const bool qkv = out == 3 * C;
            report(qkv ? "wgrad_qkv" : "wgrad_proj",
                   time_ms(iters,
                           [&] { cuda::gemm(a, b, gw, 1, out, C, N, Tensor(), cuda::GemmEpilogue::None); }),
                   2.0 * N * C * out, 0);
            report(qkv ? "wgrad_qkv_bias" : "wgrad_proj_bias",
                   time_ms(iters,
                           [&] { cuda::gemm(a, b, gw, 1, out, C, N, gb, cuda::GemmEpilogue::BiasGradient); }),
                   2.0 * N * C * out, 0);
        }
    }
    {  // memory-bound kernels on (N, C) bf16 activations
        Tensor x = random_gpu({N, C}, DType::BF16, 4), r = random_gpu({N, C}, DType::BF16, 5);
        Tensor w = random_gpu({C}, DType::BF16, 6), bias = random_gpu({C}, DType::BF16, 7);
        Tensor y = empty({N, C}, DType::BF16, Device::CUDA), mean = empty({N}, DType::F32, Device::CUDA),
               rstd = empty({N}, DType::F32, Device::CUDA);
        const double act = static_cast<double>(N) * C * bf;
        report("layer_norm_fwd",
               time_ms(iters, [&] { cuda::layer_norm_forward(x, w, bias, 1e-5, y, mean, rstd); }), 0,
               2 * act);
        Tensor dx = empty({N, C}, DType::BF16, Device::CUDA), dw = empty({C}, DType::BF16, Device::CUDA),
               db = empty({C}, DType::BF16, Device::CUDA);
        report("layer_norm_bwd",
               time_ms(iters, [&] { cuda::layer_norm_backward(r, x, w, mean, rstd, dx, false, dw, db); }), 0,
               3 * act);
        report("residual_add", time_ms(iters, [&] { (void)add(x, r); }), 0, 3 * act);
        Tensor h = random_gpu({N, 4 * C}, DType::BF16, 8), gh = random_gpu({N, 4 * C}, DType::BF16, 17);
        report("gelu_fwd", time_ms(iters, [&] { (void)gelu(h); }), 0, 2 * 4 * act);
        Tensor dh = empty({N, 4 * C}, DType::BF16, Device::CUDA);
        report("gelu_bwd", time_ms(iters, [&] { cuda::pointwise(PW::GeluBackward, 0, 0, dh, gh, h); }), 0,
               3 * 4 * act);
        // fc1's bias gradient: the (N, 4C) output gradient summed over its rows (column sums)
        report("bias_grad_sum", time_ms(iters, [&] { (void)sum(h, {0}); }), 0, 4 * act);
    }
    {  // the residual stream's LayerNorms under autocast (ln_1, ln_2): an f32 input and a bf16 output for
       // the product; backward from a bf16 gradient, added into the stream's f32 gradient. PyTorch's twin
       // is what its autocast runs: LayerNorm in f32, the product's cast, and the residual's gradient sum.
        Tensor x = random_gpu({N, C}, DType::F32, 18), g = random_gpu({N, C}, DType::BF16, 19);
        Tensor w = random_gpu({C}, DType::F32, 20), bias = random_gpu({C}, DType::F32, 21);
        Tensor y = empty({N, C}, DType::BF16, Device::CUDA), mean = empty({N}, DType::F32, Device::CUDA),
               rstd = empty({N}, DType::F32, Device::CUDA);
        const double elements = static_cast<double>(N) * C;
        report("layer_norm_fwd_f32_in",
               time_ms(iters, [&] { cuda::layer_norm_forward(x, w, bias, 1e-5, y, mean, rstd); }), 0,
               elements * (f4 + bf));
        Tensor dx = random_gpu({N, C}, DType::F32, 22), dw = empty({C}, DType::F32, Device::CUDA),
               db = empty({C}, DType::F32, Device::CUDA);
        report("layer_norm_bwd_into_f32",
               time_ms(iters, [&] { cuda::layer_norm_backward(g, x, w, mean, rstd, dx, true, dw, db); }), 0,
               elements * (f4 + bf + 2 * f4));
    }
    {  // softmax over attention rows (B, H, T, T) bf16
        Tensor s = random_gpu({B * H * T, T}, DType::BF16, 9),
               y = empty({B * H * T, T}, DType::BF16, Device::CUDA);
        report("softmax_fwd", time_ms(iters, [&] { cuda::softmax_rows(s, y, false); }), 0,
               2.0 * s.numel() * bf);
    }
    {  // optimizer over all parameters (f32 master weights and moments)
        Tensor p = random_gpu({P}, DType::F32, 10), g = random_gpu({P}, DType::F32, 11);
        Tensor m = zeros({P}, DType::F32, Device::CUDA), v = zeros({P}, DType::F32, Device::CUDA);
        AdamWScalars s{1e-4f, 0.9f, 0.98f, 1e-8f, 0.1f, 0.1f, 0.2f};
        report("adamw_step", time_ms(iters, [&] { cuda::adamw_step({p}, {g}, {m}, {v}, {0.1f}, s); }), 0,
               7.0 * P * f4);
        Tensor t = random_gpu({P}, DType::F32, 12);
        report("ema_update", time_ms(iters, [&] { cuda::ema_update({t}, {p}, 0.999); }), 0, 3.0 * P * f4);
    }
    {  // attention forward + backward, bf16, (32, 12, 197, 64)
        const int64_t AB = 32;
        Tensor q = random_gpu({AB, H, T, D}, DType::BF16, 13), k = random_gpu({AB, H, T, D}, DType::BF16, 14),
               v = random_gpu({AB, H, T, D}, DType::BF16, 15), g = random_gpu({AB, H, T, D}, DType::BF16, 16);
        Tensor out = empty({AB, H, T, D}, DType::BF16, Device::CUDA),
               lse = empty({AB, H, T}, DType::F32, Device::CUDA);
        Tensor dq = empty(q.shape(), DType::BF16, Device::CUDA),
               dk = empty(q.shape(), DType::BF16, Device::CUDA),
               dv = empty(q.shape(), DType::BF16, Device::CUDA);
        const double fwd = 4.0 * AB * H * T * T * D;
        report("attention_fused_fwd",
               time_ms(iters, [&] { cuda::flash_attention_forward(q, k, v, false, out, lse); }), fwd, 0);
        report("attention_fused_fwd_bwd",
               time_ms(iters,
                       [&] {
                           cuda::flash_attention_forward(q, k, v, false, out, lse);
                           cuda::flash_attention_backward(q, k, v, out, lse, g, false, dq, dk, dv);
                       }),
               3.5 * fwd, 0);
        // The op as models call it, through autograd: bf16 runs the fused (tensor-core) kernels; asking for
        // the probabilities runs the composed attention instead (batched cuBLASLt products around the
        // softmax kernel, what f32 runs; engine/ops/attention.cpp says why).
        set_grad_enabled(true);
        Tensor qg = q.detach().requires_grad_(), kg = k.detach().requires_grad_(),
               vg = v.detach().requires_grad_();
        for (bool composed : {false, true})
            report(composed ? "attention_composed_fwd_bwd" : "attention_fwd_bwd",
                   time_ms(iters,
                           [&] {
                               Tensor o = scaled_dot_product_attention(qg, kg, vg, false, composed).out;
                               sum(mul(o, g)).backward();
                           }),
                   3.5 * fwd, 0);
        // As models run it: from the packed (B, T, 3W) projection to (B, T, W), the gradient of the packed
        // tensor in one piece.
        Tensor qkv = random_gpu({AB, T, 3 * H * D}, DType::BF16, 17).requires_grad_(),
               go = random_gpu({AB, T, H * D}, DType::BF16, 18);
        report("self_attention_fwd_bwd",
               time_ms(iters, [&] { sum(mul(self_attention(qkv, H, false), go)).backward(); }), 3.5 * fwd, 0);
        set_grad_enabled(false);
    }
    {  // the EMA teacher's CLS rows of the attention probabilities, from a block's packed projection at batch
       // B (the attentive mask reads them from every layer); rated by the keys' bytes
        Tensor qkv = random_gpu({B, T, 3, H, D}, DType::BF16, 19);
        Tensor q = qkv.select(2, 0).permute({0, 2, 1, 3}), k = qkv.select(2, 1).permute({0, 2, 1, 3});
        report("attention_cls_probs", time_ms(iters, [&] { (void)attention_cls_probs(q, k); }), 0,
               static_cast<double>(B) * H * T * D * bf);
    }
    {  // the text tower's token embedding backward at batch B: 77 tokens a text, the last 56 padding (token
       // 0, as the CLIP tokenizer pads), into a zeroed (49408, 512) f32 gradient; rated by the gradient
       // rows read and the embedding rows written (those the batch touches, at most B * 77)
        const int64_t Tt = 77, V = 49408, W = 512;
        std::vector<int64_t> ids(static_cast<size_t>(B * Tt), 0);
        for (int64_t i = 0; i < B; ++i)
            for (int64_t j = 0; j < 21; ++j)
                ids[static_cast<size_t>(i * Tt + j)] = 1 + (i * 31 + j * 17) % (V - 1);
        const Tensor index = from_vector(ids, {B * Tt}).to(Device::CUDA);
        Tensor g = random_gpu({B * Tt, W}, DType::F32, 20), dw = empty({V, W}, DType::F32, Device::CUDA);
        report("embedding_bwd",
               time_ms(iters,
                       [&] {
                           cuda::fill(dw, 0.0);
                           cuda::index_add(dw, 1, V, W, index, false, g, "embedding");
                       }),
               0, 2.0 * B * Tt * W * f4);
    }
    AllocatorStats st = cuda::memory_stats();
    std::printf("# peak device memory %.1f MiB (reserved %.1f MiB)\n", st.peak_in_use / 1048576.0,
                st.peak_reserved / 1048576.0);
    return 0;
}
