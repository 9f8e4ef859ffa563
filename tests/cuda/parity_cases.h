// parity_cases.h: the table of CUDA parity cases. Each case names the kernels it exercises (the names
// the kernels register, engine/cuda/cuda_ops.h: kernel_names), describes its inputs at three sizes, and
// runs engine ops; the harness (test_cuda_parity.cpp) runs it on the CPU and on the GPU with the same
// inputs and compares outputs and input gradients.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "engine/core/tensor.h"

namespace aclip::test {

enum class ParitySize { Odd, One, Large };

struct ParityInput {
    Shape shape;
    enum Kind { Normal, Positive, Index, Mask } kind = Normal;
    int64_t index_limit = 0;  // Index: values in [0, index_limit)
    bool grad = true;         // floating inputs get a gradient unless false
};

struct ParityCase {
    std::string name;
    std::vector<std::string> kernels;  // registry names this case launches
    std::function<std::vector<ParityInput>(ParitySize)> inputs;
    std::function<std::vector<Tensor>(const std::vector<Tensor>&)> run;
    bool backward = true;
    bool bf16 = true;
    bool nonfinite = true;   // also checked with NaN and Inf in the first input
    double f32_tol = 1e-5;   // norm-relative: f32 rounding (6e-8) grown by sums of up to ~1e5 terms
    double bf16_tol = 2e-2;  // norm-relative: a few bf16 roundings (2^-8 each) along the op and its backward
    std::string tol_reason;  // required when a tolerance is overridden
};

const std::vector<ParityCase>& parity_cases();

}  // namespace aclip::test
