// test_optim_emulated.cpp: the optimizer's multi-tensor kernels of engine/cuda/optim.cuh, compiled for the
// CPU and run on emulated threads (engine/cuda/warp_emulation.h) against the CPU optimizer, bit for bit:
// AdamW and the EMA over tensors of one element, of a chunk and one more, several chunks, one misaligned
// (no float4), and more tensors than one launch takes (two tables).
#include <doctest/doctest.h>

#include <cstring>
#include <vector>

#include "engine/cuda/optim.cuh"  // first: it brings the emulation's stand-ins for CUDA's keywords
#include "engine/optim/adamw.h"
#include "test_util.h"

namespace aclip {

namespace {

using namespace cuda;

// Tensors of these sizes, then `extra` small ones (7 to 11 elements): sizes that end mid-chunk, whole
// chunks, several chunks, and with extra > kSlots - 6, two launch tables.
std::vector<int64_t> sizes(int extra) {
    std::vector<int64_t> n = {1, 5, kChunk, kChunk + 1, 2 * kChunk + 12, 40000};
    for (int i = 0; i < extra; ++i) n.push_back(7 + i % 5);
    return n;
}

std::vector<Tensor> tensors(const std::vector<int64_t>& n, uint64_t seed, double lo, double hi) {
    std::vector<Tensor> out;
    for (size_t i = 0; i < n.size(); ++i)
        out.push_back(test::random_tensor({n[i]}, seed + i, lo, hi, DType::F32));
    return out;
}

std::vector<Tensor> clones(const std::vector<Tensor>& ts) {
    std::vector<Tensor> out;
    for (const Tensor& t : ts) out.push_back(t.clone());
    return out;
}

bool same_bits(const Tensor& a, const Tensor& b) {
    return a.numel() == b.numel() && a.dtype() == b.dtype() &&
           std::memcmp(a.raw_data(), b.raw_data(), static_cast<size_t>(a.numel()) * dtype_size(a.dtype())) ==
               0;
}

// Runs every launch of for_each_table on emulated threads (32 a block rather than the GPU's 256: the
// kernels stride by blockDim, and each emulated thread is an OS thread); returns the number of launches.
template <class Kernel>
int run(std::vector<TensorSlot>& slots, Kernel&& kernel) {
    int launches = 0;
    for_each_table(slots, [&](const LaunchTable& table, int64_t blocks) {
        ++launches;
        emulate_launch(static_cast<unsigned>(blocks), 1, 32, [&] { kernel(table); });
    });
    return launches;
}

}  // namespace

TEST_SUITE("cuda") {
    TEST_CASE("multi-tensor AdamW on emulated threads equals the CPU's update, bit for bit") {
        const std::vector<int64_t> n = sizes(kSlots);  // kSlots + 6 tensors: two launches
        const std::vector<Tensor> p0 = tensors(n, 100, -1, 1), g = tensors(n, 2000, -1, 1),
                                  m0 = tensors(n, 4000, -0.1, 0.1), v0 = tensors(n, 6000, 0, 0.01);
        const AdamWScalars s{1e-3f, 0.9f, 0.98f, 1e-8f, 0.0f, 0.271f, 0.1990f};
        std::vector<Tensor> p = clones(p0), m = clones(m0), v = clones(v0), low;
        std::vector<TensorSlot> slots;
        for (size_t i = 0; i < n.size(); ++i) {  // weight decay on every other tensor, bf16 copies on a third
            low.push_back(i % 3 ? Tensor() : empty({n[i]}, DType::BF16));
            slots.push_back({p[i].data<float>(), g[i].data<float>(), m[i].data<float>(), v[i].data<float>(),
                             low[i].defined() ? low[i].data<bf16>() : nullptr, n[i], i % 2 ? 0.0f : 0.5f,
                             false});
        }
        CHECK(run(slots, [&](const LaunchTable& t) { adamw_kernel(t, s); }) == 2);
        for (size_t i = 0; i < n.size(); ++i) {
            CAPTURE(i);
            Tensor pe = p0[i].clone(), me = m0[i].clone(), ve = v0[i].clone();
            AdamWScalars local = s;
            local.weight_decay = i % 2 ? 0.0f : 0.5f;
            float *pp = pe.data<float>(), *pm = me.data<float>(), *pv = ve.data<float>();
            const float* pg = g[i].data<float>();
            for (int64_t k = 0; k < n[i]; ++k) adamw_element(pp[k], pm[k], pv[k], pg[k], local);
            REQUIRE(same_bits(p[i], pe));
            REQUIRE(same_bits(m[i], me));
            REQUIRE(same_bits(v[i], ve));
            if (low[i].defined()) REQUIRE(same_bits(low[i], pe.to(DType::BF16)));  // the updated values
        }
    }

    TEST_CASE("multi-tensor EMA on emulated threads equals the CPU's ema_update, bit for bit") {
        const std::vector<int64_t> n = sizes(3);
        const std::vector<Tensor> target0 = tensors(n, 300, -1, 1), source = tensors(n, 700, -1, 1);
        std::vector<Tensor> target = clones(target0);
        // one more target that is not 16-byte aligned: the scalar path
        const Tensor backing = test::random_tensor({kChunk + 9}, 11, -1, 1, DType::F32);
        const Tensor misaligned = backing.narrow(0, 1, kChunk + 8),
                     misaligned_source = tensors({kChunk + 8}, 12, -1, 1)[0];
        Tensor misaligned_target = misaligned.clone();  // the CPU's copy
        std::vector<TensorSlot> slots;
        std::vector<Tensor> low;  // bf16 copies of the even targets and the misaligned one
        for (size_t i = 0; i < n.size(); ++i) {
            low.push_back(i % 2 ? Tensor() : empty({n[i]}, DType::BF16));
            slots.push_back({target[i].data<float>(), source[i].data<float>(), nullptr, nullptr,
                             low[i].defined() ? low[i].data<bf16>() : nullptr, n[i], 0.0f, false});
        }
        low.push_back(empty({kChunk + 8}, DType::BF16));
        slots.push_back({static_cast<float*>(misaligned.raw_data()), misaligned_source.data<float>(), nullptr,
                         nullptr, low.back().data<bf16>(), kChunk + 8, 0.0f, false});
        const double momentum = 0.9961;
        CHECK(run(slots, [&](const LaunchTable& t) {
                  ema_kernel(t, static_cast<float>(momentum), static_cast<float>(1.0 - momentum));
              }) == 1);
        CHECK(slots[2].vec4);            // kChunk elements, 16-byte aligned: float4
        CHECK_FALSE(slots[3].vec4);      // kChunk + 1 elements
        CHECK_FALSE(slots.back().vec4);  // misaligned
        std::vector<Tensor> expected = clones(target0);
        expected.push_back(misaligned_target);
        std::vector<Tensor> sources = source;
        sources.push_back(misaligned_source);
        ema_update(expected, sources, momentum);  // the CPU's
        target.push_back(misaligned.contiguous());
        for (size_t i = 0; i < target.size(); ++i) {
            CAPTURE(i);
            REQUIRE(same_bits(target[i], expected[i]));
            if (low[i].defined()) REQUIRE(same_bits(low[i], expected[i].to(DType::BF16)));
        }
    }
}

}  // namespace aclip
