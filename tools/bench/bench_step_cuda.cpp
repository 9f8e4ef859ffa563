// bench_step_cuda.cpp: A-CLIP training throughput on one GPU: the full step (EMA update and teacher
// forward, attentive masks, both masked views, text, every loss, backward, AdamW) of ViT-B/16 at a given
// batch, f32 or bf16 mixed precision, with samples/s, ms/step, MFU and peak memory. MFU follows
// ../shared/docs/performance.md: about 159 GFLOP per image-text pair for the official recipe, over the
// dense bf16 peak of an H100 SXM / H200 (989.4 TFLOP/s). Inputs are random: this measures the model and
// the engine, not the decoding. By default they arrive as the trainer's do (--inputs host): three views
// of 8-bit pixels in page-locked memory, copied to the GPU and normalised there every step, so the step
// includes those copies (the kernel profile's "memcpy host to device (page-locked)" row); --inputs device
// keeps f32 views on the GPU.
// --profile N then runs N more steps under a kernel profile and prints where their time went.
// --grad-checkpointing recomputes the online towers' blocks in backward (train.grad_checkpointing): its
// cost in time and its saving in peak memory.
// Usage: aclip_bench_step_cuda [--preset vit_b16] [--batch 256] [--steps 8] [--precision bf16|f32]
//                              [--inputs host|device] [--profile N] [--grad-checkpointing]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "engine/core/parse.h"
#include "engine/core/storage.h"
#include "engine/cuda/cuda_ops.h"
#include "engine/ops/autocast.h"
#include "engine/ops/ops.h"
#include "engine/optim/adamw.h"
#include "models/aclip.h"
#include "models/presets.h"
#include "tools/bench/random_gpu.h"

using namespace aclip;

// Runs `steps` more steps under a kernel profile (engine/cuda/kernel_profile.h) and prints where their
// time went: per kernel name, ms and launches per step and the share of the total, largest first.
template <class Step>
void print_profile(int64_t steps, Step step) {
    cuda::profile_start();
    for (int64_t i = 0; i < steps; ++i) step();
    const std::vector<cuda::ProfileRow> rows = cuda::profile_stop();
    double total = 0.0, idle = 0.0;
    for (const cuda::ProfileRow& r : rows) {
        total += r.ms;
        if (r.name.starts_with(cuda::kHostWaitRow)) idle += r.ms;
    }
    const double n = static_cast<double>(steps);
    std::printf(
        "kernel profile over %lld steps: %.1f ms/step on the GPU's timeline, of which %.1f ms waiting for "
        "the host (rows '(GPU idle...) before' the launch it waited for)\n",
        static_cast<long long>(steps), total / n, idle / n);
    std::printf("%10s %8s %6s  %s\n", "ms/step", "calls", "share", "kernel");
    for (size_t i = 0; i < rows.size() && i < 40; ++i)
        std::printf("%10.2f %8.0f %5.1f%%  %s\n", rows[i].ms / n, static_cast<double>(rows[i].calls) / n,
                    100.0 * rows[i].ms / total, rows[i].name.c_str());
    if (rows.size() > 40) std::printf("(%zu more rows)\n", rows.size() - 40);
}

int main(int argc, char** argv) {
    std::string preset = "vit_b16", precision = "bf16", inputs = "host";
    int64_t B = 256, steps = 8, profile_steps = 0;
    bool grad_checkpointing = false;
    for (int i = 1; i < argc; ++i) {
        auto value = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
        auto count = [&] { return parse_int64(value()).value_or(-1); };  // -1: not a number, refused below
        if (!std::strcmp(argv[i], "--preset"))
            preset = value();
        else if (!std::strcmp(argv[i], "--batch"))
            B = count();
        else if (!std::strcmp(argv[i], "--steps"))
            steps = count();
        else if (!std::strcmp(argv[i], "--precision"))
            precision = value();
        else if (!std::strcmp(argv[i], "--profile"))
            profile_steps = count();
        else if (!std::strcmp(argv[i], "--grad-checkpointing"))
            grad_checkpointing = true;
        else if (!std::strcmp(argv[i], "--inputs") &&
                 (inputs = value(), inputs == "host" || inputs == "device"))
            continue;
        else {
            std::fprintf(
                stderr,
                "usage: aclip_bench_step_cuda [--preset P] [--batch B] [--steps N] [--precision bf16|f32] "
                "[--inputs host|device] [--profile STEPS] [--grad-checkpointing]\n");
            return 2;
        }
    }
    if (B < 1 || steps < 1 || profile_steps < 0) {
        std::fprintf(stderr,
                     "aclip_bench_step_cuda: --batch and --steps take a positive count, --profile a count\n");
        return 2;
    }
    if (cuda_device_count() == 0) {
        std::fprintf(stderr, "aclip_bench_step_cuda: no CUDA device\n");
        return 1;
    }
    try {
        AclipConfig c = model_preset(preset);
        const int64_t S = c.clip.vision.image_size, C = c.clip.text.context;
        Generator gen(0);
        Aclip model(c, gen);
        model.to(Device::CUDA);
        model.set_grad_checkpointing(grad_checkpointing);
        AdamW opt(model.param_groups(0.5), 0.9, 0.98, 1e-8);
        opt.keep_bf16_copies(precision == "bf16");  // as the trainer does
        AclipBatch batch;
        batch.view1 = random_gpu({B, 3, S, S}, DType::F32, 1);
        batch.view2 = random_gpu({B, 3, S, S}, DType::F32, 2);
        batch.ema_view = random_gpu({B, 3, S, S}, DType::F32, 3);
        std::vector<Tensor> pinned;  // --inputs host: the views as the loader hands them to the trainer
        for (const Tensor* v : {&batch.view1, &batch.view2, &batch.ema_view}) {
            Tensor u8 = empty_pinned({B, 3, S, S}, DType::U8);
            u8.copy_(add_scalar(mul_scalar(v->to(Device::CPU), 127.0), 128.0).to(DType::U8));
            pinned.push_back(u8);
        }
        // As the trainer does each step: copy the 8-bit views and normalise them on the GPU (the
        // arithmetic of normalize_images, data/augment.h, which this engine-only program cannot link).
        auto views_from_host = [&] {
            const Tensor scale = full({1, 3, 1, 1}, 1.0 / (255.0 * 0.26)).to(Device::CUDA),
                         shift = full({1, 3, 1, 1}, -0.45 / 0.26).to(Device::CUDA);
            Tensor* views[3] = {&batch.view1, &batch.view2, &batch.ema_view};
            for (int k = 0; k < 3; ++k)
                *views[k] =
                    add(mul(pinned[static_cast<size_t>(k)].to(Device::CUDA).to(DType::F32), scale), shift);
        };
        std::vector<int64_t> boxes, ids(static_cast<size_t>(B * C), 0);
        for (int64_t i = 0; i < B; ++i) {  // view boxes inside the EMA crop, as the transform makes them
            for (int64_t v :
                 std::vector<int64_t>{20 + i % 9, 10, 180, 190, 30, 24 + i % 7, 170, 176, 0, 0, 224, 224})
                boxes.push_back(v);
            ids[i * C] = c.clip.text.vocab - 2;
            for (int64_t j = 1; j < 20; ++j) ids[i * C + j] = 1 + (i * 31 + j * 17) % 40000;
            ids[i * C + 20] = c.clip.text.vocab - 1;
        }
        batch.boxes = from_vector(boxes, {B, 3, 4});
        const Tensor text = from_vector(ids, {B, C});  // the tokens too cross each step with --inputs host
        batch.text = text.to(Device::CUDA);
        auto train_step = [&] {
            if (inputs == "host") {
                views_from_host();
                batch.text = text.to(Device::CUDA);
            }
            opt.zero_grad();
            AclipStep out;
            {
                AutocastGuard autocast(precision == "bf16");
                out = model.forward(batch, 0.999);
            }
            out.loss.backward();
            opt.step(1e-4);
            model.clip.clamp_logit_scale();
            return out.loss;
        };
        std::vector<double> ms;
        uint64_t waits = 0;  // the times the last step's host waited for the GPU
        for (int64_t step = 0; step < steps; ++step) {
            cuda::synchronize();
            auto t0 = std::chrono::steady_clock::now();
            const uint64_t waits_before = cuda::host_waits();
            const Tensor loss = train_step();
            waits = cuda::host_waits() - waits_before;
            cuda::synchronize();
            const double t =
                std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
            if (step >= 2) ms.push_back(t);  // the first steps warm the allocator and cuBLASLt
            std::printf("step %lld: %.1f ms, loss %.4f\n", static_cast<long long>(step), t, loss.item());
        }
        std::sort(ms.begin(), ms.end());
        const double med = ms.empty() ? 0 : ms[ms.size() / 2];
        const double sps = static_cast<double>(B) / (med / 1e3);
        AllocatorStats st = cuda::memory_stats();
        std::printf(
            "%s A-CLIP %s (%s attention, inputs from the %s), batch %lld: %.1f ms/step, %.0f samples/s, MFU "
            "%.1f%% (159 GFLOP/pair over 989.4 TFLOP/s), peak %.1f GiB, host waits %llu a step\n",
            preset.c_str(), precision.c_str(),
            precision == "bf16" && cuda::tensor_core_attention() ? "tensor-core" : "composed", inputs.c_str(),
            static_cast<long long>(B), med, sps, 100.0 * sps * 159e9 / 989.4e12,
            st.peak_in_use / 1073741824.0, static_cast<unsigned long long>(waits));
        if (profile_steps > 0) print_profile(profile_steps, [&] { (void)train_step().item(); });
    } catch (const Error& e) {
        std::fprintf(stderr, "aclip_bench_step_cuda: %s\n", e.what());
        return 1;
    }
    return 0;
}
