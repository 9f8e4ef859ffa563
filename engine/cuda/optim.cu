// optim.cu: the optimizer's fused multi-tensor kernels. All parameters of a step are cut into chunks
// of kChunk elements, described in one table copied to the device, and updated by one launch: AdamW
// (the element update of engine/math/adamw.h, shared with the CPU) and the EMA of the teacher.
#include <vector>

#include "engine/cuda/cuda_ops.h"
#include "engine/cuda/device_util.cuh"

namespace aclip::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kChunk = 16384;

struct TensorSlot {
    float* p;        // parameter (AdamW) or EMA target
    const float* g;  // gradient (AdamW) or EMA source
    float* m;        // first moment (AdamW only)
    float* v;        // second moment (AdamW only)
    int64_t n;
    float weight_decay;
    bool vec4;  // every pointer 16-byte aligned and n a multiple of 4: float4 accesses
};
struct Chunk {
    int32_t slot;
    int64_t start;
};

__global__ void adamw_kernel(const TensorSlot* slots, const Chunk* chunks, AdamWScalars s) {
    const Chunk c = chunks[blockIdx.x];
    const TensorSlot t = slots[c.slot];
    AdamWScalars local = s;
    local.weight_decay = t.weight_decay;
    const int64_t end = min(c.start + kChunk, t.n);
    for (int64_t i = c.start + threadIdx.x; i < end; i += blockDim.x)
        adamw_element(t.p[i], t.m[i], t.v[i], t.g[i], local);
}

// target = target * m + (1 - m) * source, rounded in the CPU's order (no fused multiply-add).
__global__ void ema_kernel(const TensorSlot* slots, const Chunk* chunks, float momentum, float one_minus) {
    const Chunk c = chunks[blockIdx.x];
    const TensorSlot t = slots[c.slot];
    const int64_t end = min(c.start + kChunk, t.n);
    auto blend = [&](float p, float s) { return __fadd_rn(__fmul_rn(p, momentum), __fmul_rn(one_minus, s)); };
    if (t.vec4) {
        for (int64_t i = c.start / 4 + threadIdx.x; i < end / 4; i += blockDim.x) {
            float4 p = reinterpret_cast<float4*>(t.p)[i];
            const float4 s = reinterpret_cast<const float4*>(t.g)[i];
            reinterpret_cast<float4*>(t.p)[i] =
                make_float4(blend(p.x, s.x), blend(p.y, s.y), blend(p.z, s.z), blend(p.w, s.w));
        }
        return;
    }
    for (int64_t i = c.start + threadIdx.x; i < end; i += blockDim.x) t.p[i] = blend(t.p[i], t.g[i]);
}

AC_REGISTER_KERNEL("adamw_step");
AC_REGISTER_KERNEL("ema_update");

// Copies the slot and chunk tables to the device; returns the number of chunks.
int64_t upload_tables(std::vector<TensorSlot>& slots, Tensor& slot_buf, Tensor& chunk_buf) {
    for (TensorSlot& t : slots)
        t.vec4 = t.n % 4 == 0 && all_aligned({t.p, t.g, t.m, t.v}, 16);  // null m, v (EMA) pass
    std::vector<Chunk> chunks;
    for (size_t k = 0; k < slots.size(); ++k)
        for (int64_t start = 0; start < slots[k].n; start += kChunk)
            chunks.push_back({static_cast<int32_t>(k), start});
    if (chunks.empty()) return 0;
    slot_buf = empty({static_cast<int64_t>(slots.size() * sizeof(TensorSlot))}, DType::U8, Device::CUDA);
    chunk_buf = empty({static_cast<int64_t>(chunks.size() * sizeof(Chunk))}, DType::U8, Device::CUDA);
    memcpy(slot_buf.raw_data(), slots.data(), slots.size() * sizeof(TensorSlot), Copy::HostToDevice);
    memcpy(chunk_buf.raw_data(), chunks.data(), chunks.size() * sizeof(Chunk), Copy::HostToDevice);
    return static_cast<int64_t>(chunks.size());
}

float* f32_ptr(const Tensor& t, const char* op) {
    AC_CHECK(t.device() == Device::CUDA && t.dtype() == DType::F32 && t.is_contiguous(), op,
             ": expected a contiguous f32 CUDA tensor, got ", t.desc());
    return static_cast<float*>(t.raw_data());
}

}  // namespace

void adamw_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                const std::vector<Tensor>& exp_avg, const std::vector<Tensor>& exp_avg_sq,
                const std::vector<float>& weight_decay, const AdamWScalars& scalars) {
    std::vector<TensorSlot> slots;
    for (size_t k = 0; k < params.size(); ++k)
        slots.push_back({f32_ptr(params[k], "AdamW"), f32_ptr(grads[k], "AdamW"),
                         f32_ptr(exp_avg[k], "AdamW"), f32_ptr(exp_avg_sq[k], "AdamW"), params[k].numel(),
                         weight_decay[k], false});
    Tensor slot_buf, chunk_buf;
    const int64_t blocks = upload_tables(slots, slot_buf, chunk_buf);
    if (blocks == 0) return;
    adamw_kernel<<<blocks, kThreads>>>(static_cast<const TensorSlot*>(slot_buf.raw_data()),
                                       static_cast<const Chunk*>(chunk_buf.raw_data()), scalars);
    AC_CUDA_LAUNCH_CHECK("adamw_step");
}

void ema_update(const std::vector<Tensor>& target, const std::vector<Tensor>& source, double momentum) {
    std::vector<TensorSlot> slots;
    for (size_t k = 0; k < target.size(); ++k)
        slots.push_back({f32_ptr(target[k], "ema_update"), f32_ptr(source[k], "ema_update"), nullptr, nullptr,
                         target[k].numel(), 0.0f, false});
    Tensor slot_buf, chunk_buf;
    const int64_t blocks = upload_tables(slots, slot_buf, chunk_buf);
    if (blocks == 0) return;
    ema_kernel<<<blocks, kThreads>>>(static_cast<const TensorSlot*>(slot_buf.raw_data()),
                                     static_cast<const Chunk*>(chunk_buf.raw_data()),
                                     static_cast<float>(momentum), static_cast<float>(1.0 - momentum));
    AC_CUDA_LAUNCH_CHECK("ema_update");
}

}  // namespace aclip::cuda
