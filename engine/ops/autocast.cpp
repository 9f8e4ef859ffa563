// autocast.cpp: see autocast.h.
#include "engine/ops/autocast.h"

namespace aclip {

namespace {
thread_local bool g_autocast = false;

int width(DType t) {
    return t == DType::BF16 ? 1 : t == DType::F32 ? 2 : t == DType::F64 ? 3 : 0;
}
}  // namespace

bool autocast_enabled() {
    return g_autocast;
}

AutocastGuard::AutocastGuard(bool on) : previous_(g_autocast) {
    g_autocast = on;
}
AutocastGuard::~AutocastGuard() {
    g_autocast = previous_;
}

std::optional<DType> autocast_matmul_dtype() {
    return g_autocast ? std::optional<DType>(DType::BF16) : std::nullopt;
}

Tensor autocast_to_low(const Tensor& t) {
    return g_autocast && t.defined() && t.dtype() == DType::F32 ? t.to(DType::BF16) : t;
}

Tensor autocast_to_f32(const Tensor& t) {
    return g_autocast && t.defined() && t.dtype() == DType::BF16 ? t.to(DType::F32) : t;
}

std::pair<Tensor, Tensor> autocast_promote(const Tensor& a, const Tensor& b, bool takes_mixed) {
    if (!g_autocast || !a.defined() || !b.defined() || a.dtype() == b.dtype() || !is_floating(a.dtype()) ||
        !is_floating(b.dtype()) || (takes_mixed && f32_with_bf16(a.dtype(), b.dtype())))
        return {a, b};
    return width(a.dtype()) > width(b.dtype()) ? std::pair{a, b.to(a.dtype())}
                                               : std::pair{a.to(b.dtype()), b};
}

}  // namespace aclip
