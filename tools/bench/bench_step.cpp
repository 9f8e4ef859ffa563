// bench_step.cpp: milliseconds per A-CLIP training step (EMA update and teacher, masks, both views, text,
// every loss, backward, AdamW) of the quickstart model at batch 64 on the CPU.
// tools/bench/bench_step_torch.py times the PyTorch reference of tools/reference/ doing the same step with
// the same shapes and threads; tools/bench/compare_step.sh prints both and the ratio.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "engine/cpu/gemm.h"
#include "engine/math/philox.h"
#include "models/aclip.h"
#include "models/presets.h"

using namespace aclip;

namespace {
Tensor uniform(const Shape& s, uint64_t seed) {
    Tensor t = empty(s);
    for (int64_t i = 0; i < t.numel(); ++i)
        t.data<float>()[i] = 2 * uniform_from_word(philox_word(seed, 0, i)) - 1;
    return t;
}
}  // namespace

int main() {
    AclipConfig c = model_preset("tiny");  // the quickstart's shapes (configs/quickstart.ini)
    c.clip.vision = VisionConfig{64, 8, 96, 3, 4, 4, 64, Activation::GELU, 1e-6, false, true, true};
    c.clip.text = TextConfig{24, 595, 64, 2, 4, 4, 64, Activation::QuickGELU, 1e-5};
    c.ssl = SslConfig{128, 64, 128, 64};
    const int64_t B = 64;
    Generator gen(0);
    Aclip model(c, gen);
    AdamW opt(model.param_groups(0.1), 0.9, 0.98, 1e-8);
    AclipBatch batch;
    batch.view1 = uniform({B, 3, 64, 64}, 1);
    batch.view2 = uniform({B, 3, 64, 64}, 2);
    batch.ema_view = uniform({B, 3, 64, 64}, 3);
    std::vector<int64_t> boxes, ids(B * 24, 0);
    for (int64_t i = 0; i < B; ++i) {
        std::vector<int64_t> v = {4 + i % 7, 2, 40, 44, 10, 8 + i % 5, 38, 40, 0, 0, 60, 60};
        boxes.insert(boxes.end(), v.begin(), v.end());
        ids[i * 24] = 593;
        for (int64_t j = 1; j < 12; ++j) ids[i * 24 + j] = 1 + (i * 13 + j * 7) % 500;
        ids[i * 24 + 12] = 594;
    }
    batch.boxes = from_vector(boxes, {B, 3, 4});
    batch.text = from_vector(ids, {B, 24});
    std::vector<double> ms;
    for (int step = 0; step < 13; ++step) {
        auto t0 = std::chrono::steady_clock::now();
        opt.zero_grad();
        model.forward(batch, 0.99).loss.backward();
        opt.step(1e-4);
        if (step >= 3)
            ms.push_back(
                std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    std::printf("aclip %.1f ms/step (median of %zu, batch %lld, %d threads, %s)\n", ms[ms.size() / 2],
                ms.size(), static_cast<long long>(B), omp_get_max_threads(), cpu_gemm_kernels().c_str());
    return 0;
}
