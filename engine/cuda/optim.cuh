// optim.cuh: the optimizer's multi-tensor kernels of optim.cu, in a header so that
// tests/cuda/test_optim_emulated.cpp can also compile them for the CPU and run them on emulated threads
// (warp_emulation.h). All parameters of a step are cut into chunks of kChunk elements, a block each, and
// updated by one launch per kSlots tensors: AdamW (the element update of engine/math/adamw.h, shared with
// the CPU) and the EMA of the teacher, each also writing the updated values rounded to bf16 for a slot that
// asks (the copies the next forward's bf16 products take). The tensors of a launch travel in its parameters
// (a LaunchTable of about 14 KB; CUDA 12.1 and later take 32 KB), so no table is copied to the device and
// nothing waits. The kernels sit in an unnamed namespace: optim.cu and the test each compile their own.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/cuda/device_math.cuh"
#include "engine/cuda/launch.h"
#include "engine/math/adamw.h"

namespace aclip::cuda {

namespace {

constexpr int kOptimThreads = 256;
constexpr int64_t kChunk = 16384;  // elements a block updates
constexpr int kSlots = 256;        // tensors a launch takes

struct TensorSlot {
    float* p;        // parameter (AdamW) or EMA target
    const float* g;  // gradient (AdamW) or EMA source
    float* m;        // first moment (AdamW only)
    float* v;        // second moment (AdamW only)
    bf16* low;       // if not null: receives the updated p rounded to bf16 (the next forward's copy)
    int64_t n;
    float weight_decay;
    bool vec4;  // every pointer 16-byte aligned and n a multiple of 4: float4 accesses
};

// The tensors of one launch. Block b updates chunk b - first_block[s] of slot s, where
// first_block[s] <= b < first_block[s + 1].
struct LaunchTable {
    TensorSlot slots[kSlots];
    int64_t first_block[kSlots + 1];
    int count;
};

// Cuts `slots` into launch tables of at most kSlots tensors (empty tensors left out) and calls
// launch(table, blocks) for each; sets each slot's vec4.
template <class Launch>
void for_each_table(std::vector<TensorSlot>& slots, Launch&& launch) {
    LaunchTable table;
    table.count = 0;
    table.first_block[0] = 0;
    auto flush = [&] {
        if (table.count > 0) launch(table, table.first_block[table.count]);
        table.count = 0;
    };
    for (TensorSlot& s : slots) {
        if (s.n == 0) continue;
        s.vec4 = s.n % 4 == 0 && all_aligned({s.p, s.g, s.m, s.v, s.low}, 16);  // null ones pass
        table.slots[table.count] = s;
        table.first_block[table.count + 1] = table.first_block[table.count] + (s.n + kChunk - 1) / kChunk;
        if (++table.count == kSlots) flush();
    }
    flush();
}

// The slot of block b: the last s with first_block[s] <= b (binary search).
__device__ __forceinline__ int slot_of(const LaunchTable& t, int64_t b) {
    int lo = 0, hi = t.count - 1;
    while (lo < hi) {
        const int mid = (lo + hi + 1) / 2;
        if (t.first_block[mid] <= b)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

// Four updated values (float4 i of the tensor) rounded to bf16 into `low`, where a slot asks for them.
__device__ __forceinline__ void store_low(bf16* low, int64_t i, const float4& p) {
    if (low)
        store_pack<bf16, 4>(low + 4 * i,
                            Pack<bf16, 4>{{st<bf16>(p.x), st<bf16>(p.y), st<bf16>(p.z), st<bf16>(p.w)}});
}

// Each element's parameter, moments and gradient are read into registers before any is written: the
// update through references into memory (p, m and v may alias, for all the compiler knows) made it load m
// only after storing p, and v after m, three memory round trips an element in a row (64% of bandwidth in
// run 4; its PTX). With 16-byte aligned tensors (vec4) a thread moves four elements of each at once.
__global__ void adamw_kernel(__grid_constant__ const LaunchTable t, AdamWScalars s) {
    const int64_t b = blockIdx.x;
    const int k = slot_of(t, b);
    const TensorSlot& slot = t.slots[k];
    AdamWScalars local = s;
    local.weight_decay = slot.weight_decay;
    const int64_t start = (b - t.first_block[k]) * kChunk, end = min(start + kChunk, slot.n);
    if (slot.vec4) {  // start and end are multiples of 4: kChunk is, and so is n
        for (int64_t i = start / 4 + threadIdx.x; i < end / 4; i += blockDim.x) {
            float4 p = reinterpret_cast<const float4*>(slot.p)[i],
                   m = reinterpret_cast<const float4*>(slot.m)[i],
                   v = reinterpret_cast<const float4*>(slot.v)[i];
            const float4 g = reinterpret_cast<const float4*>(slot.g)[i];
            adamw_element(p.x, m.x, v.x, g.x, local);
            adamw_element(p.y, m.y, v.y, g.y, local);
            adamw_element(p.z, m.z, v.z, g.z, local);
            adamw_element(p.w, m.w, v.w, g.w, local);
            reinterpret_cast<float4*>(slot.p)[i] = p;
            reinterpret_cast<float4*>(slot.m)[i] = m;
            reinterpret_cast<float4*>(slot.v)[i] = v;
            store_low(slot.low, i, p);
        }
        return;
    }
    for (int64_t i = start + threadIdx.x; i < end; i += blockDim.x) {
        float p = slot.p[i], m = slot.m[i], v = slot.v[i];
        adamw_element(p, m, v, slot.g[i], local);
        slot.p[i] = p;
        slot.m[i] = m;
        slot.v[i] = v;
        if (slot.low) slot.low[i] = st<bf16>(p);
    }
}

// target = target * m + (1 - m) * source, rounded in the CPU's order (no fused multiply-add).
__global__ void ema_kernel(__grid_constant__ const LaunchTable t, float momentum, float one_minus) {
    const int64_t b = blockIdx.x;
    const int k = slot_of(t, b);
    const TensorSlot& slot = t.slots[k];
    const int64_t start = (b - t.first_block[k]) * kChunk, end = min(start + kChunk, slot.n);
    auto blend = [&](float p, float s) { return __fadd_rn(__fmul_rn(p, momentum), __fmul_rn(one_minus, s)); };
    if (slot.vec4) {  // start and end are multiples of 4: kChunk is, and so is n
        for (int64_t i = start / 4 + threadIdx.x; i < end / 4; i += blockDim.x) {
            const float4 p = reinterpret_cast<const float4*>(slot.p)[i];
            const float4 s = reinterpret_cast<const float4*>(slot.g)[i];
            const float4 out =
                make_float4(blend(p.x, s.x), blend(p.y, s.y), blend(p.z, s.z), blend(p.w, s.w));
            reinterpret_cast<float4*>(slot.p)[i] = out;
            store_low(slot.low, i, out);
        }
        return;
    }
    for (int64_t i = start + threadIdx.x; i < end; i += blockDim.x) {
        slot.p[i] = blend(slot.p[i], slot.g[i]);
        if (slot.low) slot.low[i] = st<bf16>(slot.p[i]);
    }
}

}  // namespace

}  // namespace aclip::cuda
