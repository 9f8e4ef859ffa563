// test_cuda_model.cpp: the models on the GPU. A module moved with Module::to(Device::CUDA) computes the
// A-CLIP step (teacher, masks, both views, text, every loss, backward) as it does on the CPU, in f32 and
// under bf16 autocast, and trains as it does (AdamW, EMA, BatchNorm statistics over steps); the attentive
// mask keeps the top squares of the GPU teacher's scores; moving back gives the same values; SyncBatchNorm
// runs there. GPU cases are skipped and counted without a GPU.
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <stdexcept>

#include "engine/autograd/grad_mode.h"
#include "engine/cuda/cuda_ops.h"
#include "engine/dist/comm.h"
#include "engine/dist/sync_batch_norm.h"
#include "engine/ops/autocast.h"
#include "engine/optim/adamw.h"
#include "model/aclip_compare.h"
#include "models/attentive_mask.h"
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

// fn() run with the environment variable `name` set to `setting` (unset after), under the kernel profile:
// its result in f64 on the CPU, and whether the profile had a row `kernel` (the switch's path ran).
std::pair<Tensor, bool> run_with_setting(const char* name, const char* setting, const char* kernel,
                                         const std::function<Tensor()>& fn) {
    // Restored however fn ends: a throw left the profile on and failed the next case that starts one (run 8).
    struct Restore {
        const char* name;
        bool profiling = false;
        ~Restore() {
            unsetenv(name);
            try {
                if (profiling) cuda::profile_stop();
            } catch (const Error&) {  // the error fn threw is the one reported
            }
        }
    } restore{name};
    setenv(name, setting, 1);
    cuda::profile_start();
    restore.profiling = true;
    const Tensor out = fn();
    restore.profiling = false;
    bool ran = false;
    for (const cuda::ProfileRow& r : cuda::profile_stop()) ran = ran || r.name == kernel;
    return {out.to(Device::CPU).to(DType::F64), ran};
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
                // bf16: the CLIP loss alone. The SSL losses in bf16 are ill-conditioned at this size (SimCLR
                // at temperature 0.1 over 8 rows): on the CPU alone, a 1e-3 change of the input moves the
                // image tower's bf16 gradients by 13-35% with the SSL terms and by 1-2% without them, and
                // the GPU's differing roundings did as much (docs/GPU_STATUS.md, run 5). f32 checks the
                // whole loss, and the parity cases every kernel in bf16.
                (mixed ? out.clip1 : out.loss).backward();
                return out;
            };
            AclipStep a = step(cpu, Device::CPU), b = step(gpu, Device::CUDA);
            // f32: products in different orders (OpenBLAS vs cuBLASLt); bf16: roundings of different
            // intermediate values on each side. The SimCLR value only in f32, for the reason above: on the
            // CPU alone, inputs moved by 1e-3 move it by 3.1% in bf16 (3.074 -> 3.170) and 0.2% in f32, the
            // CLIP and BYOL terms by 0.3% (run 6's GPU: 3% off in bf16, the other terms within 2e-2).
            const double tol = mixed ? 2e-2 : 1e-4;
            auto close = [&](const Tensor& x, const Tensor& y) {
                return std::abs(x.item() - y.item()) <= tol * std::abs(y.item());
            };
            CHECK(close(b.clip1, a.clip1));
            CHECK(close(b.byol, a.byol));
            if (!mixed) CHECK(close(b.simclr, a.simclr));
            auto pc = cpu.named_parameters(), pg = gpu.named_parameters();
            REQUIRE(pc.size() == pg.size());
            std::map<std::string, Tensor> cpu_grads;
            for (const NamedTensor& p : pc) cpu_grads[p.name] = p.tensor->grad();
            std::set<std::string> buffers;
            for (const NamedTensor& b : cpu.named_buffers()) buffers.insert(b.name);
            auto l2 = [](const Tensor& t) { return std::sqrt(sum(mul(t, t)).to(DType::F64).item()); };
            double worst = 0;
            std::string worst_name;
            for (size_t i = 0; i < pc.size(); ++i) {
                if (!pc[i].tensor->grad().defined()) continue;
                REQUIRE(pg[i].tensor->grad().defined());
                CHECK(pg[i].tensor->grad().device() == Device::CUDA);
                const Tensor &got = pg[i].tensor->grad(), &want = pc[i].tensor->grad();
                const double error = l2(sub(got.to(Device::CPU).to(DType::F64), want.to(DType::F64)));
                double e = error / l2(want);
                // The bias of a Linear followed by BatchNorm (an SSL head's fcN before bnN) has no gradient
                // in exact arithmetic, BN subtracting the batch mean: both sides hold rounding noise, so
                // its error is measured against its layer's weight gradient.
                const std::string& name = pc[i].name;
                std::smatch m;
                if (std::regex_match(name, m, std::regex(R"((.*)\.fc(\d+)\.bias)")) &&
                    buffers.count(str_cat(m[1].str(), ".bn", m[2].str(), ".running_mean")))
                    e = error / l2(cpu_grads.at(str_cat(m[1].str(), ".fc", m[2].str(), ".weight")));
                if (e > worst) worst = e, worst_name = name;
            }
            INFO("worst gradient: " << worst_name << " " << worst);
            CHECK(worst <= (mixed ? 5e-2 : 1e-3));
        }
    }

    TEST_CASE("GPU: training steps (AdamW, the EMA teacher, BatchNorm statistics) track the CPU's") {
        if (!test::gpu_available("A-CLIP training steps on the GPU")) return;
        AclipConfig c = model_preset("tiny");
        c.mask = MaskMode::Random;  // the same kept patches on both devices
        Generator g1(5), g2(5);
        Aclip cpu(c, g1), gpu(c, g2);
        gpu.to(Device::CUDA);
        AdamW opt_cpu(cpu.param_groups(0.1), 0.9, 0.98, 1e-8),
            opt_gpu(gpu.param_groups(0.1), 0.9, 0.98, 1e-8);
        const int64_t steps = 3;
        for (int64_t step = 0; step < steps; ++step) {
            CAPTURE(step);
            double losses[2];
            for (int side = 0; side < 2; ++side) {  // as train() does a step
                Aclip& m = side == 0 ? cpu : gpu;
                AdamW& opt = side == 0 ? opt_cpu : opt_gpu;
                AclipBatch batch = batch_on(c, 4, side == 0 ? Device::CPU : Device::CUDA);
                batch.mask_offset = static_cast<uint64_t>(step) << 24;
                AclipStep out = m.forward(batch, ema_momentum(step, steps, 0.9));
                out.loss.backward();
                losses[side] = out.loss.item();
                opt.step(1e-3);
                m.clip.clamp_logit_scale();
                opt.zero_grad();
            }
            CHECK(std::abs(losses[1] - losses[0]) <= 1e-4 * std::abs(losses[0]));
        }
        // Every parameter, EMA copy and BatchNorm statistic after the steps. f32 sums in other orders
        // (cuBLASLt against OpenBLAS) move gradients by ~1e-6; Adam's normalised update passes that on, so
        // 1e-3 of a tensor's norm after three steps. Elements whose true gradient is exactly zero follow
        // f32 noise through Adam on each side (aclip_compare.h) and are left out.
        auto sc = cpu.named_state(), sg = gpu.named_state();
        REQUIRE(sc.size() == sg.size());
        for (size_t i = 0; i < sc.size(); ++i) {
            CAPTURE(sc[i].name);
            CHECK(sg[i].tensor->device() == Device::CUDA);
            if (!is_floating(sc[i].tensor->dtype())) continue;
            auto part = test::zero_gradient_part(sc[i].name, sc[i].tensor->numel());
            Tensor ours = test::split_part(sg[i].tensor->to(Device::CPU).to(DType::F64), part).first;
            Tensor ref = test::split_part(sc[i].tensor->to(DType::F64), part).first;
            if (ref.numel() > 0) CHECK(norm_rel_error(ours, ref) <= 1e-3);
        }
    }

    TEST_CASE("GPU: the attentive mask from the GPU teacher keeps the top squares of its own scores") {
        if (!test::gpu_available("attentive mask on the GPU")) return;
        AclipConfig c = model_preset("tiny");  // attentive mask, two views
        REQUIRE(c.mask == MaskMode::Attentive);
        Generator g1(6), g2(6);
        Aclip cpu(c, g1), gpu(c, g2);
        gpu.to(Device::CUDA);
        const AclipBatch batch = batch_on(c, 4, Device::CUDA);
        AclipStep a = cpu.forward(batch_on(c, 4, Device::CPU), 0.99), b = gpu.forward(batch, 0.99);
        b.loss.backward();
        CHECK(std::isfinite(b.loss.item()));
        REQUIRE(b.attn.device() == Device::CUDA);
        CHECK(norm_rel_error(b.attn.to(Device::CPU), a.attn) <= 1e-4);  // f32: the teacher's CLS attention
        // The kept squares are the top ones of the GPU's own scores, recomputed here on the CPU: a square
        // kept scores at least as much as any dropped one, up to the two devices' resampling roundings.
        const MaskConfig mc{c.clip.vision.grid(), c.mask_block, c.keep_ratio};
        const int64_t G = mc.grid, S = G / mc.block, K = kept_patches(mc);
        const Tensor attn = b.attn.to(Device::CPU);
        const std::vector<int64_t> boxes = batch.boxes.to_vector<int64_t>();
        for (int view = 0; view < 2; ++view) {
            const Tensor keep = view == 0 ? b.keep1 : b.keep2;
            REQUIRE(keep.device() == Device::CUDA);
            REQUIRE(keep.shape() == Shape{4, K});
            const std::vector<int64_t> kept = keep.to(Device::CPU).to_vector<int64_t>();
            for (int64_t s = 0; s < 4; ++s) {
                CAPTURE(view);
                CAPTURE(s);
                Tensor map =
                    view_score_map(attn.select(0, s), &boxes[(s * 3 + 2) * 4], &boxes[(s * 3 + view) * 4], G);
                const std::vector<double> sq =
                    avg_pool2d(map.reshape({1, 1, G, G}), mc.block).reshape({S * S}).to_vector<double>();
                std::vector<bool> is_kept(static_cast<size_t>(S * S), false);
                for (int64_t k = 0; k < K; ++k) {
                    const int64_t p = kept[static_cast<size_t>(s * K + k)];
                    REQUIRE((p >= 0 && p < G * G));
                    is_kept[static_cast<size_t>((p / G / mc.block) * S + (p % G) / mc.block)] = true;
                }
                double lowest_kept = 1e30, highest_dropped = -1e30, largest = 0;
                for (int64_t q = 0; q < S * S; ++q) {
                    const double v = sq[static_cast<size_t>(q)];
                    largest = std::max(largest, std::abs(v));
                    if (is_kept[static_cast<size_t>(q)])
                        lowest_kept = std::min(lowest_kept, v);
                    else
                        highest_dropped = std::max(highest_dropped, v);
                }
                CHECK(std::count(is_kept.begin(), is_kept.end(), true) == kept_blocks(mc));
                CHECK(lowest_kept >= highest_dropped - 1e-5 * largest);
            }
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
        // A product that runs longer than the host takes to return from queuing it: its time is counted
        // from the host's clock after the launch call, and a 256 x 256 product had finished by then (run 6).
        const int64_t n = 2048;  // ~0.2 ms in f32
        const Tensor a = ones({n, n}).to(Device::CUDA), b = ones({n, n}).to(Device::CUDA);
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
        CHECK(c.to(Device::CPU).to_vector<float>()[0] == 2.0f * n);  // (1 + 1) summed over n terms
    }

    TEST_CASE("GPU: ACLIP_BIAS_GRADIENT_EPILOGUE=0 sums a linear layer's bias gradient apart, same values") {
        if (!test::gpu_available("bias-gradient epilogue switch")) return;
        // 512 rows: the epilogue has algorithms for aligned sizes (not for every odd one, run 6)
        const Tensor x = random_tensor({512, 768}, 84, -1, 1, DType::BF16).to(Device::CUDA),
                     gy = random_tensor({512, 256}, 85, -1, 1, DType::BF16).to(Device::CUDA);
        auto run = [&](const char* setting) {  // the bias's gradient, and whether the epilogue computed it
            return run_with_setting(
                "ACLIP_BIAS_GRADIENT_EPILOGUE", setting, "gemm (bf16, with the bias gradient)", [&] {
                    // f32 parameters, as a model's: autocast leaves f64 alone (run 8: "dtypes differ")
                    Tensor
                        w = random_tensor({256, 768}, 86, -0.1, 0.1, DType::F32)
                                .to(Device::CUDA)
                                .requires_grad_(),
                        b = random_tensor({256}, 87, -0.1, 0.1, DType::F32).to(Device::CUDA).requires_grad_();
                    AutocastGuard autocast;
                    linear(x, w, b).backward(gy);
                    return b.grad();
                });
        };
        const auto [on, ran_epilogue] = run("1");
        const auto [off, ran_epilogue_off] = run("0");
        CHECK(ran_epilogue);
        CHECK_FALSE(ran_epilogue_off);
        CHECK(norm_rel_error(off, on) <= 1e-5);  // f32 sums of the same 512 bf16 terms in other orders
    }

    TEST_CASE("GPU: ACLIP_TENSOR_CORE_ATTENTION=0 sends bf16 attention to the composed path, same values") {
        if (!test::gpu_available("tensor-core attention switch")) return;
        const Tensor qkv = random_tensor({4, 101, 3 * 768}, 83, -1, 1, DType::BF16).to(Device::CUDA);
        auto run = [&](const char* setting) {  // the output, and whether the tensor-core kernel ran
            return run_with_setting("ACLIP_TENSOR_CORE_ATTENTION", setting, "flash_attention_forward_mma",
                                    [&] { return self_attention(qkv, 12, false); });
        };
        const auto [on, ran_mma] = run("1");
        const auto [off, ran_mma_off] = run("0");
        CHECK(ran_mma);
        CHECK_FALSE(ran_mma_off);
        CHECK(norm_rel_error(off, on) <= 1e-2);  // bf16: each path rounds its own intermediates
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
        // Unwound by an error with a collective queued, a communicator aborts (ncclCommAbort) rather than
        // waiting for the other ranks; this process's GPU goes on.
        try {
            const std::unique_ptr<Comm> failing = make_nccl_comm(0, 1, 0, nccl_unique_id());
            Tensor y = x.to(Device::CUDA);
            failing->all_reduce_sum(y);
            throw std::runtime_error("this rank's error");
        } catch (const std::runtime_error&) {
        }
        CHECK_CLOSE(add(g, g).to(Device::CPU), mul_scalar(x, 2.0), 0.0, 0.0);
        // The tcp rendezvous's watch lives and ends with the communicator: destroyed normally, it says so.
        int pair[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0);
        make_nccl_comm(
            0, 1, 0, nccl_unique_id(),
            std::make_unique<PeerWatch>(0, std::vector<PeerWatch::Peer>{{1, pair[0]}}, [](int) {}));
        char said = 0;
        CHECK(::recv(pair[1], &said, 1, 0) == 1);
        CHECK(said == 'F');
        ::close(pair[1]);
    }

    TEST_CASE("GPU: sync_batch_norm on the GPU equals batch_norm, forward and backward") {
        if (!test::gpu_available("sync_batch_norm on the GPU")) return;
        std::unique_ptr<Comm> comm = nccl_available() ? make_nccl_comm(0, 1, 0, nccl_unique_id())
                                                      : std::unique_ptr<Comm>(std::make_unique<LocalComm>());
        Tensor x = random_tensor({6, 5}, 91, -1, 3, DType::F32), w = random_tensor({6, 5}, 92);
        Tensor gamma = random_tensor({5}, 93, 0.5, 1.5, DType::F32),
               beta = random_tensor({5}, 94, -1, 1, DType::F32);
        auto run = [&](bool sync, Device d) {
            // detach: on the CPU to() returns the tensor itself, whose requires_grad_ would last
            Tensor xi = x.detach().to(d).requires_grad_(), gi = gamma.detach().to(d).requires_grad_(),
                   bi = beta.detach().to(d).requires_grad_();
            Tensor mean = zeros({5}, DType::F32, d), var = ones({5}, DType::F32, d);
            Tensor y = sync ? sync_batch_norm(xi, gi, bi, mean, var, 0.1, 1e-5, *comm)
                            : batch_norm(xi, gi, bi, mean, var, true, 0.1, 1e-5);
            sum(mul(y, w.to(DType::F32).to(d))).backward();
            return std::vector<Tensor>{y, xi.grad(), gi.grad(), bi.grad(), mean, var};
        };
        const std::vector<Tensor> want = run(false, Device::CPU), got = run(true, Device::CUDA);
        for (size_t i = 0; i < want.size(); ++i) {
            CAPTURE(i);
            CHECK(got[i].device() == Device::CUDA);
            CHECK(norm_rel_error(got[i], want[i]) <= 1e-5);  // f32, sums in other orders
        }
    }
}
