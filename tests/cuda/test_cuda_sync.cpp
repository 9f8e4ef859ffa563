// test_cuda_sync.cpp: the host waits for the GPU only where it needs a value. Copies to the GPU are queued
// (page-locked sources directly, pageable ones through a staging block), and neither the source's nor the
// staging block's memory is reused before the copy ran; indices are checked by the kernels, and a bad one
// is an error at the next synchronisation, naming the op, after which the GPU goes on; HostCopy waits for
// its own copy, not for the work queued after it; an A-CLIP training step waits once, for the teacher's
// scores. GPU cases are skipped and counted without a GPU.
#include <functional>
#include <string>

#include "engine/core/error.h"
#include "engine/core/host_copy.h"
#include "engine/cuda/cuda_ops.h"
#include "engine/ops/autocast.h"
#include "engine/ops/ops.h"
#include "engine/optim/adamw.h"
#include "models/presets.h"
#include "test_util.h"
#include "tests/gpu_skip.h"

using namespace aclip;
using aclip::test::random_tensor;

namespace {

// Queues a few milliseconds of work on a (on the GPU), so that a copy queued next runs well after the
// host has gone on.
void keep_the_gpu_busy(Tensor a) {
    for (int i = 0; i < 20; ++i) a = mul_scalar(matmul(a, a), 1.0 / 2048);
}

std::string error_of(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_SUITE("cuda") {
    TEST_CASE("GPU: copies to the GPU are queued, and their sources' memory waits for them") {
        if (!test::gpu_available("queued copies")) return;
        const int64_t n = 1 << 18;  // 1 MiB of f32: a staged copy
        Tensor pageable = random_tensor({n}, 3, -1, 1, DType::F32);
        const std::vector<float> want = pageable.to_vector<float>();
        Tensor pinned = empty_pinned({n}, DType::F32);
        pinned.copy_(pageable);

        const Tensor work = random_tensor({2048, 2048}, 5, -1, 1, DType::F32).to(Device::CUDA);
        cuda::synchronize();
        const uint64_t waits = cuda::host_waits();
        keep_the_gpu_busy(work);
        Tensor from_pageable = pageable.to(Device::CUDA), from_pinned = pinned.to(Device::CUDA);
        CHECK(cuda::host_waits() == waits);  // neither copy waited for the queued products
        // Overwrite what the copies read: the pageable source went through a staging block; the pinned one
        // is freed, and pinned blocks taken now must not be its memory while its copy is queued.
        pageable.fill_(7.0);
        pinned = Tensor();
        for (int k = 0; k < 4; ++k) empty_pinned({n}, DType::F32).fill_(-1.0);
        CHECK(from_pageable.to(Device::CPU).to_vector<float>() == want);
        CHECK(from_pinned.to(Device::CPU).to_vector<float>() == want);
        CHECK(cuda::host_waits() == waits + 2);  // each read-back waits
    }

    TEST_CASE("GPU: HostCopy waits for its copy alone, while later work goes on, and raises earlier faults") {
        if (!test::gpu_available("HostCopy")) return;
        const Tensor work = random_tensor({2048, 2048}, 5, -1, 1, DType::F32).to(Device::CUDA);
        const Tensor x = mul_scalar(work.narrow(0, 0, 3), 2.0);  // (3, 2048), made on the GPU
        cuda::synchronize();
        const uint64_t waits = cuda::host_waits();
        HostCopy copy(x);
        keep_the_gpu_busy(work);  // queued behind the copy
        const Tensor host = copy.wait();
        CHECK(cuda::host_waits() == waits + 1);
        CHECK(host.device() == Device::CPU);
        CHECK(host.to_vector<float>() ==
              mul_scalar(work.narrow(0, 0, 3).to(Device::CPU), 2.0).to_vector<float>());
        // A fault of a kernel queued before the copy is raised by wait().
        const Tensor table = work.narrow(0, 0, 4);
        const Tensor rows = index_select(table, 0, from_vector<int64_t>({4}, {1}).to(Device::CUDA));
        HostCopy faulty(rows);
        CHECK(error_of([&] { (void)faulty.wait(); }).find("index_select") != std::string::npos);
        CHECK_NOTHROW(cuda::synchronize());  // reported once
    }

    TEST_CASE("GPU: an index out of range is an error at the next synchronisation, naming the op") {
        if (!test::gpu_available("index faults")) return;
        const Tensor x = random_tensor({4, 6, 3}, 11, -1, 1, DType::F32).to(Device::CUDA);
        const Tensor table = random_tensor({6, 3}, 12, -1, 1, DType::F32).to(Device::CUDA);
        auto ids = [](std::vector<int64_t> v, Shape s) { return from_vector(v, s).to(Device::CUDA); };
        const Tensor bad_rows = ids({0, 1, 2, 3, 4, 5, 6, 0}, {4, 2});  // 6 is outside [0, 6)
        struct Case {
            std::string op;
            std::function<Tensor()> run;
        };
        const std::vector<Case> cases = {
            {"index_select",
             [&] {
                 return index_select(table, 0, ids({1, 9}, {2}));
             }},
            {"embedding",
             [&] {
                 return embedding(table, ids({-1, 2}, {1, 2}));
             }},
            {"gather_rows", [&] { return gather_rows(x, bad_rows); }},
            {"gather",
             [&] {
                 return gather(table, 0, ids({0, 0, 6}, {1, 3}));
             }},
            {"scatter_add",
             [&] {
                 return scatter_add(table, 1, ids({3}, {1, 1}), table);
             }},
            {"cross_entropy",
             [&] {
                 return cross_entropy(table, ids({0, 1, 2, 3, 3, 12}, {6}));
             }},
        };
        for (const Case& c : cases) {
            CAPTURE(c.op);
            Tensor out;
            CHECK_NOTHROW(out = c.run());  // queued: nothing read back yet
            const std::string msg = error_of([&] { (void)out.to(Device::CPU); });
            CHECK(msg.find(c.op) != std::string::npos);
            CHECK(msg.find("is outside [0, ") != std::string::npos);
            CHECK(msg.find("found on the GPU") != std::string::npos);
            // The fault is cleared and the GPU goes on: a good op and a synchronisation work.
            CHECK(index_select(table, 0, ids({5, 0}, {2})).to(Device::CPU).size(0) == 2);
            CHECK_NOTHROW(cuda::synchronize());
        }
        // The backward's kernel (index_add) skips the bad row too: the context survives to report it.
        Tensor leaf = x.detach().requires_grad_(true);
        sum(gather_rows(leaf, bad_rows)).backward();
        CHECK(error_of([] { cuda::synchronize(); }).find("gather_rows") != std::string::npos);
        CHECK(leaf.grad().to(Device::CPU).size(0) == 4);
    }

    TEST_CASE("GPU: an A-CLIP training step waits for the GPU once, for the teacher's scores") {
        if (!test::gpu_available("host waits of a step")) return;
        AclipConfig c = model_preset("tiny");
        Generator g(4);
        Aclip model(c, g);
        model.to(Device::CUDA);
        AdamW opt(model.param_groups(0.1), 0.9, 0.98, 1e-8);
        const int64_t B = 4, S = c.clip.vision.image_size, C = c.clip.text.context;
        AclipBatch batch;
        batch.view1 = random_tensor({B, 3, S, S}, 1, -1, 1, DType::F32).to(Device::CUDA);
        batch.view2 = random_tensor({B, 3, S, S}, 2, -1, 1, DType::F32).to(Device::CUDA);
        batch.ema_view = random_tensor({B, 3, S, S}, 3, -1, 1, DType::F32).to(Device::CUDA);
        std::vector<int64_t> boxes, text(B * C, 0);
        for (int64_t i = 0; i < B; ++i) {
            for (int64_t v : {4, 2, 30, 36, 10, 8, 28, 30, 0, 0, 40, 44}) boxes.push_back(v);
            text[i * C] = c.clip.text.vocab - 2;
            text[i * C + 1] = 5 + i;
            text[i * C + 2] = c.clip.text.vocab - 1;
        }
        batch.boxes = from_vector(boxes, {B, 3, 4});
        batch.text = from_vector(text, {B, C}).to(Device::CUDA);
        for (bool mixed : {false, true}) {
            CAPTURE(mixed);
            auto step = [&] {
                opt.zero_grad();
                AclipStep out;
                {
                    AutocastGuard autocast(mixed);
                    out = model.forward(batch, 0.99);
                }
                out.loss.backward();
                opt.step(1e-4);
                model.clip.clamp_logit_scale();
            };
            step();  // the first step reads BatchNorm's counter, moved to the GPU with the model
            cuda::synchronize();
            const uint64_t before = cuda::host_waits();
            step();
            const uint64_t waits = cuda::host_waits() - before;
            INFO("host waits in one step: " << waits);
            CHECK(waits == 1);
        }
    }
}
