// aclip_compare.h: comparing A-CLIP weights or gradients between two runs that should agree (C++ vs the
// PyTorch reference, N ranks vs one process): whole-tensor relative error, and the elements whose exact
// gradient is zero, which both sides fill with f32 rounding noise and must be checked apart.
#pragma once
#include <cmath>
#include <string>
#include <utility>

#include "engine/ops/ops.h"
#include "test_util.h"  // norm_rel_error

namespace aclip::test {

// Elements [begin, end) of a tensor whose gradient is zero in exact arithmetic, so that both sides see
// only f32 rounding noise there (and Adam, which normalises the gradient, then moves them by up to about
// lr per step in directions nobody can predict):
//   - the key part of attention's in_proj_bias: softmax is invariant to adding a constant to every key;
//   - biases of Linear layers followed by BatchNorm, which subtracts the batch mean (SimCLR's fc1, fc2),
//     and what those biases feed: that BatchNorm's running_mean.
inline std::pair<int64_t, int64_t> zero_gradient_part(const std::string& name, int64_t numel) {
    auto ends_with = [&](const std::string& s) {
        return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
    };
    if (ends_with("attn.in_proj_bias")) return {numel / 3, 2 * numel / 3};
    for (const char* s : {"simclr_mlp.fc1.bias", "simclr_mlp.fc2.bias", "simclr_mlp.bn1.running_mean",
                          "simclr_mlp.bn2.running_mean"})
        if (ends_with(s)) return {0, numel};
    return {0, 0};
}

// The parameter whose gradient sets the scale of that noise: the layer's weight for the parts of a bias
// above (fcN.bias -> fcN.weight, attn.in_proj_bias -> attn.in_proj_weight). The zero gradient is a sum
// over the batch of terms of that scale which cancel, so its noise is a small fraction of it (run on an
// AVX-512 machine: SimCLR's fc1.bias 5.7e-6 of its weight gradient's largest element).
inline std::string noise_scale_parameter(const std::string& name) {
    const std::string bias = "bias";
    const bool is_bias =
        name.size() >= bias.size() && name.compare(name.size() - bias.size(), bias.size(), bias) == 0;
    return is_bias ? name.substr(0, name.size() - bias.size()) + "weight" : name;
}

// Splits a tensor (flattened) into the elements outside [begin, end) and those inside.
inline std::pair<Tensor, Tensor> split_part(const Tensor& t, std::pair<int64_t, int64_t> part) {
    Tensor flat = t.detach().reshape({-1});
    std::vector<Tensor> rest;
    if (part.first > 0) rest.push_back(flat.narrow(0, 0, part.first));
    if (part.second < flat.numel()) rest.push_back(flat.narrow(0, part.second, flat.numel() - part.second));
    Tensor outside = rest.empty() ? zeros({0}, t.dtype()) : concat(rest, 0);
    return {outside, flat.narrow(0, part.first, part.second - part.first)};
}

inline double max_abs(const Tensor& t) {
    double m = 0;
    for (double v : t.to_vector<double>()) m = std::max(m, std::abs(v));
    return m;
}

}  // namespace aclip::test
