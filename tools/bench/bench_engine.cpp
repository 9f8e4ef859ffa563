// bench_engine.cpp: times the engine on the CPU, forward + backward, for one pre-norm transformer block
// (width 256, 4 heads, sequence 64, batch 64) and for its parts on their own: matmul, layer_norm,
// softmax and attention. tools/bench/bench_torch.py times the same shapes in PyTorch and
// tools/bench/compare.sh prints both with their ratio.
// Usage: aclip_bench [--threads N] [--iters N]. Output: one "name milliseconds" line per case.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/cpu/gemm.h"
#include "engine/math/philox.h"
#include "engine/nn/layers.h"
#include "engine/ops/ops.h"

using namespace aclip;

namespace {

Tensor uniform(const Shape& s, uint64_t seed, bool grad) {
    Tensor t = empty(s);
    float* p = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = 2 * uniform_from_word(philox_word(seed, 0, i)) - 1;
    if (grad) t.requires_grad_();
    return t;
}

// Median of `iters` timed runs after 3 warm-up runs, in milliseconds.
double time_ms(int iters, const std::function<void()>& fn) {
    for (int i = 0; i < 3; ++i) fn();
    std::vector<double> ms;
    for (int i = 0; i < iters; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        fn();
        ms.push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
}

// Forward, then backward of sum(out * w) with a fixed w, as the PyTorch script does.
void fwd_bwd(const Tensor& out, const Tensor& w) {
    sum(mul(out, w)).backward();
}

}  // namespace

int main(int argc, char** argv) {
    int threads = 0, iters = 20;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = std::atoi(argv[++i]);
        else if (!std::strcmp(argv[i], "--iters") && i + 1 < argc)
            iters = std::atoi(argv[++i]);
        else {
            std::fprintf(stderr, "usage: aclip_bench [--threads N] [--iters N]\n");
            return 2;
        }
    }
    if (threads > 0) omp_set_num_threads(threads);  // OpenBLAS follows OMP_NUM_THREADS/OPENBLAS_NUM_THREADS
    const int64_t B = 64, T = 64, W = 256, H = 4;
    std::printf("# aclip_bench: B=%lld T=%lld W=%lld H=%lld threads=%d, median of %d, ms, %s\n", (long long)B,
                (long long)T, (long long)W, (long long)H, omp_get_max_threads(), iters,
                cpu_gemm_kernels().c_str());

    Generator gen(0);
    ResidualAttentionBlock block(W, H, 4 * W, Activation::GELU, 1e-5, gen);
    Tensor x = uniform({B, T, W}, 1, true), wx = uniform({B, T, W}, 2, false);
    std::printf("block_fwd_bwd %.3f\n", time_ms(iters, [&] {
                    block.zero_grad();
                    x.zero_grad();
                    fwd_bwd(block.forward(x, false), wx);
                }));
    std::printf("block_fwd %.3f\n", time_ms(iters, [&] {
                    NoGradGuard no_grad;
                    (void)block.forward(x, false);
                }));

    Tensor a = uniform({B * T, W}, 3, true), wt = uniform({W, 4 * W}, 4, true),
           wm = uniform({B * T, 4 * W}, 5, false);
    std::printf("matmul_fwd_bwd %.3f\n", time_ms(iters, [&] {
                    a.zero_grad();
                    wt.zero_grad();
                    fwd_bwd(matmul(a, wt), wm);
                }));
    Tensor g = uniform({W}, 6, true), b = uniform({W}, 7, true), wa = uniform({B * T, W}, 8, false);
    std::printf("layer_norm_fwd_bwd %.3f\n", time_ms(iters, [&] {
                    a.zero_grad();
                    g.zero_grad();
                    b.zero_grad();
                    fwd_bwd(layer_norm(a, g, b, 1e-5), wa);
                }));
    Tensor s = uniform({B, H, T, T}, 9, true), ws = uniform({B, H, T, T}, 10, false);
    std::printf("softmax_fwd_bwd %.3f\n", time_ms(iters, [&] {
                    s.zero_grad();
                    fwd_bwd(softmax(s, -1), ws);
                }));
    Tensor q = uniform({B, H, T, W / H}, 11, true), k = uniform({B, H, T, W / H}, 12, true),
           v = uniform({B, H, T, W / H}, 13, true), wq = uniform({B, H, T, W / H}, 14, false);
    std::printf("attention_fwd_bwd %.3f\n", time_ms(iters, [&] {
                    q.zero_grad();
                    k.zero_grad();
                    v.zero_grad();
                    fwd_bwd(scaled_dot_product_attention(q, k, v, false).out, wq);
                }));
    return 0;
}
