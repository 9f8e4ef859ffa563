// bench_models.cpp: builds every model size and runs the image and text towers forward on the CPU at
// batch 1, printing parameters, time and the peak CPU memory of each (weights included).
// Usage: aclip_bench_models [name ...]   (default: every preset; see models/presets.h)
#include <chrono>
#include <cstdio>

#include "engine/autograd/grad_mode.h"
#include "engine/math/philox.h"
#include "models/clip.h"
#include "models/presets.h"

using namespace aclip;

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> names(argv + 1, argv + argc);
    if (names.empty()) names = model_preset_names();
    std::printf("%-16s %10s %8s %12s %12s %10s\n", "model", "params M", "init s", "image ms", "text ms",
                "peak MiB");
    for (const std::string& name : names) {
        try {
            AclipConfig cfg = model_preset(name);
            cpu_bytes_reset_peak();
            auto t0 = std::chrono::steady_clock::now();
            Generator gen(0);
            Clip clip(cfg.clip, gen);
            double init_s = seconds_since(t0);
            const int64_t S = cfg.clip.vision.image_size, C = cfg.clip.text.context;
            Tensor image = empty({1, 3, S, S});
            float* p = image.data<float>();
            for (int64_t i = 0; i < image.numel(); ++i)
                p[i] = 2 * uniform_from_word(philox_word(1, 0, i)) - 1;
            std::vector<int64_t> ids(C, 0);
            ids[0] = cfg.clip.text.vocab - 2;
            for (int64_t j = 1; j < C / 2; ++j) ids[j] = 1 + j;
            ids[C / 2] = cfg.clip.text.vocab - 1;
            NoGradGuard no_grad;
            t0 = std::chrono::steady_clock::now();
            Tensor img = clip.visual.forward(image).embed;
            double image_ms = seconds_since(t0) * 1e3;
            t0 = std::chrono::steady_clock::now();
            Tensor txt = clip.text.forward(from_vector(ids, {1, C}));
            double text_ms = seconds_since(t0) * 1e3;
            std::printf("%-16s %10.2f %8.2f %12.1f %12.1f %10.1f\n", name.c_str(),
                        clip.num_parameters() / 1e6, init_s, image_ms, text_ms, cpu_bytes_peak() / 1048576.0);
        } catch (const Error& e) {
            std::fprintf(stderr, "%s: %s\n", name.c_str(), e.what());
            return 1;
        }
    }
    return 0;
}
