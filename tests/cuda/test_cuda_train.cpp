// test_cuda_train.cpp: train() with train.device = cuda, the trainer's own path on a GPU: the model moved
// before the optimizer is built, batches loaded into page-locked memory and queued to the GPU, the step,
// checkpoints written from the GPU and read back into it on resume. The step's arithmetic is compared
// with the CPU's in test_cuda_model.cpp; here the loop around it. It needs the data libraries (shards, JPEG,
// the tokenizer), so it is built with them, as test_cuda_eval.cpp.
#include "model/aclip_compare.h"
#include "test_util.h"
#include "tests/gpu_skip.h"
#include "tests/train/small_run.h"
#include "train/run_state.h"

using namespace aclip;
using test::small_set_dir;
using test::tiny_run;

TEST_SUITE("cuda") {
    TEST_CASE("GPU: train() on the GPU in f32 tracks the same run on the CPU") {
        if (!test::gpu_available("training on the GPU")) return;
        // Random masks: the same kept patches on both devices (an attentive mask may break a near-tie of
        // the teacher's scores the other way).
        auto run = [](const std::string& name, const char* device) {
            Config c = tiny_run(name);
            c.set_override("aclip.mask=random");
            c.set_override("train.steps=3");
            c.set_override(std::string("train.device=") + device);
            return train(c);
        };
        const TrainResult cpu = run("f32_cpu", "cpu"), gpu = run("f32_gpu", "cuda");
        REQUIRE(gpu.step == 3);
        // f32 sums in other orders (cuBLASLt against OpenBLAS) move each step's loss by ~1e-6 relative
        CHECK(std::abs(gpu.loss - cpu.loss) <= 1e-4 * std::abs(cpu.loss));
        // As test_cuda_model.cpp's training steps: Adam's normalised update carries that noise to 1e-3 of a
        // tensor's norm in three steps; elements whose exact gradient is zero are left out.
        SafetensorsFile a = load_safetensors(list_checkpoints(small_set_dir() + "/f32_cpu").back());
        SafetensorsFile b = load_safetensors(list_checkpoints(small_set_dir() + "/f32_gpu").back());
        REQUIRE(a.tensors.size() == b.tensors.size());
        for (size_t i = 0; i < a.tensors.size(); ++i) {
            const auto& [name, ref_tensor] = a.tensors[i];
            CAPTURE(name);
            REQUIRE(b.tensors[i].first == name);
            if (!is_floating(ref_tensor.dtype())) continue;
            auto part = test::zero_gradient_part(name, ref_tensor.numel());
            Tensor ours = test::split_part(b.tensors[i].second.to(DType::F64), part).first;
            Tensor ref = test::split_part(ref_tensor.to(DType::F64), part).first;
            if (ref.numel() > 0) CHECK(test::norm_rel_error(ours, ref) <= 1e-3);
        }
    }

    TEST_CASE(
        "GPU: a bf16 run on the GPU resumed from its checkpoint ends bitwise-equal to an uninterrupted one") {
        if (!test::gpu_available("resuming a run on the GPU")) return;
        // The kernels are deterministic (fixed-order column sums, no atomics in a sum; cuBLASLt's plans
        // are chosen once per shape), so the GPU's run repeats bit for bit, as the CPU's does.
        auto config = [](const std::string& name) {
            Config c = tiny_run(name);
            c.set_override("train.device=cuda");
            c.set_override("train.precision=bf16");
            return c;
        };
        const TrainResult full = train(config("bf16_gpu_full"));
        REQUIRE(full.step == 6);
        CHECK(std::isfinite(full.loss));
        const Config parted = config("bf16_gpu_parted");
        train(parted);
        const std::vector<std::string> ckpts = list_checkpoints(small_set_dir() + "/bf16_gpu_parted");
        REQUIRE(ckpts.size() == 2);             // steps 3 and 6
        test::forget_checkpoint(ckpts.back());  // forget the second half
        const TrainResult resumed = train(parted, "latest");
        CHECK(resumed.first_step == 3);
        CHECK(resumed.loss == full.loss);
        test::check_same_last_checkpoint("bf16_gpu_full", "bf16_gpu_parted");
    }
}
