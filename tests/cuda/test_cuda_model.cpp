// test_cuda_model.cpp: the models on the GPU. A module moved with Module::to(Device::CUDA) computes the
// A-CLIP step (teacher, masks, both views, text, every loss, backward) as it does on the CPU, in f32 and
// under bf16 autocast; moving back gives the same values. GPU cases are skipped and counted without a GPU.
#include "engine/autograd/grad_mode.h"
#include "engine/cuda/cuda_ops.h"
#include "engine/dist/comm.h"
#include "engine/ops/autocast.h"
#include "models/presets.h"
#include "test_util.h"
#include "tests/gpu_skip.h"

using namespace aclip;
using aclip::test::norm_rel_error;
using aclip::test::random_tensor;

namespace {

AclipBatch batch_on(const AclipConfig& c, int64_t B, Device device) {
    const int64_t S = c.clip.vision.image_size, C = c.clip.text.context;
    AclipBatch b;
    b.view1 = random_tensor({B, 3, S, S}, 71, -1, 1, DType::F32).to(device);
    b.view2 = random_tensor({B, 3, S, S}, 72, -1, 1, DType::F32).to(device);
    b.ema_view = random_tensor({B, 3, S, S}, 73, -1, 1, DType::F32).to(device);
    std::vector<int64_t> boxes;
    for (int64_t i = 0; i < B; ++i)
        for (int64_t v : {4, 2, 30, 36, 10, 8, 28, 30, 0, 0, 40, 44}) boxes.push_back(v);
    b.boxes = from_vector(boxes, {B, 3, 4});
    std::vector<int64_t> ids(B * C, 0);
    for (int64_t i = 0; i < B; ++i) {
        ids[i * C] = c.clip.text.vocab - 2;
        for (int64_t j = 1; j < 4 + i; ++j) ids[i * C + j] = 1 + (i * 5 + j) % 90;
        ids[i * C + 4 + i] = c.clip.text.vocab - 1;
    }
    b.text = from_vector(ids, {B, C}).to(device);
    return b;
}

}  // namespace

TEST_SUITE("cuda") {
    TEST_CASE("GPU: the A-CLIP step on the GPU matches the CPU, in f32 and under bf16 autocast") {
        if (!test::gpu_available("A-CLIP step on the GPU")) return;
        AclipConfig c = model_preset("tiny");
        c.mask = MaskMode::Random;  // the same kept patches on both devices
        for (bool mixed : {false, true}) {
            CAPTURE(mixed);
            Generator g1(9), g2(9);
            Aclip cpu(c, g1), gpu(c, g2);
            gpu.to(Device::CUDA);
            auto step = [&](Aclip& m, Device d) {
                AclipStep out;
                {
                    AutocastGuard autocast(mixed);
                    out = m.forward(batch_on(c, 4, d), 0.99);
                }
                out.loss.backward();
                return out;
            };
            AclipStep a = step(cpu, Device::CPU), b = step(gpu, Device::CUDA);
            // f32: products in different orders (OpenBLAS vs cuBLASLt); bf16: roundings of different
            // intermediate values on each side
            const double tol = mixed ? 2e-2 : 1e-4;
            for (auto [x, y] : {std::pair{b.clip1, a.clip1}, {b.simclr, a.simclr}, {b.byol, a.byol}})
                CHECK(std::abs(x.item() - y.item()) <= tol * std::abs(y.item()));
            auto pc = cpu.named_parameters(), pg = gpu.named_parameters();
            REQUIRE(pc.size() == pg.size());
            double worst = 0;
            std::string worst_name;
            for (size_t i = 0; i < pc.size(); ++i) {
                if (!pc[i].tensor->grad().defined()) continue;
                REQUIRE(pg[i].tensor->grad().defined());
                CHECK(pg[i].tensor->grad().device() == Device::CUDA);
                double e = norm_rel_error(pg[i].tensor->grad(), pc[i].tensor->grad());
                if (e > worst) worst = e, worst_name = pc[i].name;
            }
            INFO("worst gradient: " << worst_name << " " << worst);
            CHECK(worst <= (mixed ? 5e-2 : 1e-3));
        }
    }

    TEST_CASE("GPU: Module::to moves every tensor and back without changing a value") {
        if (!test::gpu_available("Module::to")) return;
        AclipConfig c = model_preset("tiny");
        Generator g1(4), g2(4);
        Aclip a(c, g1), b(c, g2);
        b.to(Device::CUDA);
        for (auto& nt : b.named_state()) CHECK(nt.tensor->device() == Device::CUDA);
        b.to(Device::CPU);
        auto sa = a.named_state(), sb = b.named_state();
        for (size_t i = 0; i < sa.size(); ++i) {
            CAPTURE(sa[i].name);
            CHECK(sa[i].tensor->to_vector<double>() == sb[i].tensor->to_vector<double>());
            CHECK(sa[i].tensor->requires_grad() == sb[i].tensor->requires_grad());
        }
    }

    TEST_CASE("GPU: pinned batches: page-locked, reused after free, and copied to the GPU unchanged") {
        if (!test::gpu_available("empty_pinned")) return;
        const size_t before = cpu_bytes_in_use();
        for (int round = 0; round < 3; ++round) {  // freed blocks go back to the pinned cache
            Tensor t = empty_pinned({3, 224, 224}, DType::U8);
            CHECK(t.is_pinned());
            uint8_t* p = t.data<uint8_t>();
            for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<uint8_t>(i * 7 + round);
            Tensor back = t.to(Device::CUDA).to(DType::F32).to(Device::CPU);
            std::vector<float> v = back.to_vector<float>();
            for (int64_t i = 0; i < t.numel(); i += 997) REQUIRE(v[static_cast<size_t>(i)] == p[i]);
        }
        CHECK(cpu_bytes_in_use() == before);
    }

    TEST_CASE("GPU: the kernel profile names every launch, counts it once and times it") {
        if (!test::gpu_available("kernel profile")) return;
        const Tensor a = ones({256, 256}).to(Device::CUDA), b = ones({256, 256}).to(Device::CUDA);
        cuda::profile_start();
        const Tensor c = matmul(add(a, b), b);
        const std::vector<cuda::ProfileRow> rows = cuda::profile_stop();
        auto row = [&](const std::string& name) {
            for (const cuda::ProfileRow& r : rows)
                if (r.name == name) return r;
            return cuda::ProfileRow{};
        };
        CHECK(row("pointwise.Add").calls == 1);
        CHECK(row("gemm (f32)").calls == 1);
        CHECK(row("gemm (f32)").ms > 0.0);
        CHECK_THROWS_WITH_AS(cuda::profile_stop(), doctest::Contains("no kernel profile is on"), Error);
        CHECK(c.to(Device::CPU).to_vector<float>()[0] == 512.0f);  // (1 + 1) summed over 256 terms
    }

    TEST_CASE("GPU: the NCCL communicator, a world of one: collectives keep values, CPU tensors travel") {
        if (!test::gpu_available("NCCL communicator")) return;
        if (!nccl_available()) {
            MESSAGE("this build has no NCCL");
            return;
        }
        std::unique_ptr<Comm> c = make_nccl_comm(0, 1, 0, nccl_unique_id());
        Tensor x = random_tensor({3, 5}, 81, -1, 1, DType::F32);
        Tensor g = x.to(Device::CUDA);
        c->all_reduce_sum(g);
        CHECK_CLOSE(g, x, 0.0, 0.0);
        CHECK_CLOSE(c->all_gather(g), x, 0.0, 0.0);
        Tensor cpu = x.clone();
        c->all_reduce_sum(cpu);  // through the GPU and back
        CHECK(cpu.device() == Device::CPU);
        CHECK_CLOSE(cpu, x, 0.0, 0.0);
        CHECK(c->all_gather(from_vector<int64_t>({4, 7}, {1, 2})).to_vector<int64_t>() ==
              std::vector<int64_t>{4, 7});
        std::string bytes = std::string("abc\0def", 7);
        c->broadcast_bytes(bytes, 0);
        CHECK(bytes == std::string("abc\0def", 7));
        c->barrier();
    }
}
