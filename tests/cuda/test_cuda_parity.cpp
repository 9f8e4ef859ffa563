// test_cuda_parity.cpp: the CUDA parity harness. Every case of parity_cases.cpp runs on the CPU and on
// the GPU with the same inputs, in f32 and bf16, at an odd size, at size 1, with non-contiguous inputs
// and at a large size; outputs and input gradients (of a random weighting of the outputs) must agree to
// the case's tolerance, by the norm-relative error ||gpu - cpu|| / ||cpu||. A further run puts NaN and
// Inf into the first input and requires both devices to put non-finite values in the same places.
// Without a GPU the cases are skipped and counted; the registry test below runs everywhere.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "engine/autograd/grad_mode.h"
#include "engine/cuda/cuda_ops.h"
#include "engine/math/philox.h"
#include "engine/ops/ops.h"
#include "tests/cuda/parity_cases.h"
#include "tests/gpu_skip.h"

namespace aclip::test {

namespace {

// Values of input k of a case, as f64 on the CPU.
Tensor draw(const ParityInput& in, uint64_t seed) {
    Tensor t = empty(in.shape, DType::F64);
    double* p = t.data<double>();
    for (int64_t i = 0; i < t.numel(); ++i) {
        double u = uniform_from_word(philox_word(seed, 0, static_cast<uint64_t>(i)));
        switch (in.kind) {
            case ParityInput::Normal:
                p[i] = 4.0 * u - 2.0;
                break;
            case ParityInput::Positive:
                p[i] = 0.5 + 1.5 * u;
                break;
            case ParityInput::Index:
                p[i] = std::floor(u * static_cast<double>(in.index_limit));
                break;
            case ParityInput::Mask:
                p[i] = u < 0.5 ? 1.0 : 0.0;
                break;
        }
    }
    return t;
}

DType storage_dtype(const ParityInput& in, DType floating) {
    if (in.kind == ParityInput::Index) return DType::I64;
    if (in.kind == ParityInput::Mask) return DType::U8;
    return floating;
}

// The input as the op sees it: a contiguous tensor, or (strided) a view whose last dim is cut from a
// wider one, so no dim is contiguous in memory beyond the last.
Tensor place(const Tensor& values_in, Device device, bool strided) {
    Tensor values = values_in.detach();  // a new handle: requires_grad_ on it leaves the caller's alone
    if (!strided || values.dim() == 0) return values.to(device);
    Shape wide = values.shape();
    wide.back() += 3;
    Tensor base = zeros(wide, values.dtype());
    {
        NoGradGuard no_grad;
        base.narrow(-1, 0, values.size(-1)).copy_(values);
    }
    return base.to(device).narrow(-1, 0, values.size(-1));
}

struct RunResult {
    std::vector<Tensor> outputs;  // on the CPU, f64 (integers converted)
    std::vector<bool> integral;   // per output: an integer tensor, compared exactly
    std::vector<Tensor> grads;    // per input, undefined when it has none
};

RunResult run_on(const ParityCase& c, const std::vector<Tensor>& values,
                 const std::vector<ParityInput>& specs, Device device, bool strided, bool backward,
                 const std::vector<Tensor>& weights) {
    std::vector<Tensor> inputs;
    for (size_t k = 0; k < values.size(); ++k) {
        Tensor t = place(values[k], device, strided);
        if (backward && specs[k].grad && is_floating(t.dtype())) t.requires_grad_();
        inputs.push_back(t);
    }
    std::vector<Tensor> outs = c.run(inputs);
    RunResult r;
    if (backward) {
        Tensor loss;
        for (size_t k = 0; k < outs.size(); ++k) {
            if (!outs[k].requires_grad()) continue;
            Tensor w = weights[k].to(outs[k].dtype()).to(outs[k].device());
            Tensor term = sum(mul(outs[k], w)).to(DType::F32);
            loss = loss.defined() ? add(loss, term) : term;
        }
        if (loss.defined()) loss.backward();
        for (const Tensor& t : inputs) {
            // a backward formula that allocates on the default device would hand the GPU a CPU gradient
            if (t.requires_grad() && t.grad().defined())
                CHECK_MESSAGE(t.grad().device() == t.device(), "a gradient left its input's device");
            r.grads.push_back(
                t.requires_grad() && t.grad().defined() ? t.grad().to(Device::CPU).to(DType::F64) : Tensor());
        }
    }
    for (const Tensor& o : outs) {
        CHECK_MESSAGE(o.device() == device, "an output is not on the device its inputs are on");
        r.outputs.push_back(o.detach().to(Device::CPU).to(DType::F64));
        r.integral.push_back(!is_floating(o.dtype()));
    }
    return r;
}

// ||a - b|| / ||b|| over finite elements; non-finite elements must sit in the same places.
void check_close(const Tensor& gpu, const Tensor& cpu, double tol, const std::string& what, bool exact) {
    INFO(what);
    CHECK(gpu.shape() == cpu.shape());
    if (gpu.shape() != cpu.shape()) return;
    std::vector<double> a = gpu.to_vector<double>(), b = cpu.to_vector<double>();
    double diff = 0, norm = 0;
    int64_t nonfinite_mismatch = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        bool fa = std::isfinite(a[i]), fb = std::isfinite(b[i]);
        if (!fa || !fb) {
            bool same = (std::isnan(a[i]) && std::isnan(b[i])) || a[i] == b[i];
            nonfinite_mismatch += !same;
            continue;
        }
        diff += (a[i] - b[i]) * (a[i] - b[i]);
        norm += b[i] * b[i];
    }
    CHECK_MESSAGE(nonfinite_mismatch == 0,
                  nonfinite_mismatch << " non-finite values differ in place or sign");
    if (exact) {
        CHECK_MESSAGE(diff == 0.0, "integer output differs");
        return;
    }
    double rel = std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
    if (norm == 0) rel = std::sqrt(diff);
    CHECK_MESSAGE(rel <= tol, "relative error " << rel << " > tolerance " << tol);
}

const char* size_name(ParitySize s) {
    return s == ParitySize::Odd ? "odd" : s == ParitySize::One ? "one" : "large";
}

// Runs case c on the CPU and on device other. With other = CPU (no GPU), the large size is left out: the
// run then checks the case itself (its inputs, strided views and run function), which a GPU run needs.
void run_case(const ParityCase& c, Device other) {
    for (DType dt : {DType::F32, DType::BF16}) {
        if (dt == DType::BF16 && !c.bf16) continue;
        const double tol = dt == DType::F32 ? c.f32_tol : c.bf16_tol;
        struct Variant {
            ParitySize size;
            bool strided, nonfinite;
        };
        std::vector<Variant> variants = {{ParitySize::Odd, false, false},
                                         {ParitySize::One, false, false},
                                         {ParitySize::Odd, true, false},
                                         {ParitySize::Large, false, false}};
        if (c.nonfinite) variants.push_back({ParitySize::Odd, false, true});
        for (const Variant& var : variants) {
            if (other == Device::CPU && var.size == ParitySize::Large) continue;
            std::vector<ParityInput> specs = c.inputs(var.size);
            std::vector<Tensor> values;
            for (size_t k = 0; k < specs.size(); ++k) {
                Tensor v = draw(specs[k], 1000 + 17 * k + static_cast<uint64_t>(var.size));
                if (var.nonfinite && k == 0 && specs[k].kind == ParityInput::Normal && v.numel() >= 3) {
                    double* p = v.data<double>();
                    p[0] = NAN;
                    p[1] = INFINITY;
                    p[2] = -INFINITY;
                }
                values.push_back(v.to(storage_dtype(specs[k], dt)));
            }
            const bool backward = c.backward && !var.nonfinite;
            std::string what = str_cat(c.name, " [", dtype_name(dt), ", ", size_name(var.size),
                                       var.strided ? ", strided" : "", var.nonfinite ? ", NaN/Inf" : "", "]");
            INFO(what);
            // Output weights for the loss: drawn once, from the CPU outputs' shapes.
            RunResult cpu = run_on(c, values, specs, Device::CPU, var.strided, false, {});
            std::vector<Tensor> weights;
            for (size_t k = 0; k < cpu.outputs.size(); ++k)
                weights.push_back(draw(ParityInput{cpu.outputs[k].shape()}, 5000 + k));
            if (backward) cpu = run_on(c, values, specs, Device::CPU, var.strided, true, weights);
            RunResult run = run_on(c, values, specs, other, var.strided, backward, weights);
            CHECK(run.outputs.size() == cpu.outputs.size());
            if (run.outputs.size() != cpu.outputs.size()) continue;
            for (size_t k = 0; k < cpu.outputs.size(); ++k)
                check_close(run.outputs[k], cpu.outputs[k], tol, str_cat(what, " output ", k),
                            cpu.integral[k]);
            for (size_t k = 0; k < cpu.grads.size(); ++k) {
                if (!cpu.grads[k].defined()) continue;
                CHECK(run.grads[k].defined());
                if (!run.grads[k].defined()) continue;
                check_close(run.grads[k], cpu.grads[k], tol, str_cat(what, " gradient of input ", k), false);
            }
        }
    }
}

}  // namespace

TEST_SUITE("cuda") {
    TEST_CASE("registry: every CUDA kernel has a parity case, and every case names registered kernels") {
        const std::vector<std::string>& registered = cuda::kernel_names();
        if (!cuda_backend_built()) {
            MESSAGE("CPU-only build: no CUDA kernels to check");
            return;
        }
        REQUIRE(!registered.empty());
        std::set<std::string> covered;
        for (const ParityCase& c : parity_cases())
            for (const std::string& k : c.kernels) {
                covered.insert(k);
                CHECK_MESSAGE(std::find(registered.begin(), registered.end(), k) != registered.end(),
                              "case '" << c.name << "' names '" << k << "', which no kernel registers");
            }
        for (const std::string& k : registered)
            CHECK_MESSAGE(covered.count(k) == 1, "CUDA kernel '" << k << "' has no parity case");
        std::set<std::string> unique(registered.begin(), registered.end());
        CHECK_MESSAGE(unique.size() == registered.size(), "a kernel name is registered twice");
    }

    TEST_CASE("parity cases run on the CPU against themselves (the cases' own code, before a GPU runs it)") {
        for (const ParityCase& c : parity_cases()) {
            INFO("case: " << c.name);
            try {
                run_case(c, Device::CPU);
            } catch (const std::exception& e) {
                FAIL_CHECK("case '" << c.name << "' threw on the CPU: " << std::string(e.what()));
            }
        }
    }

    // ACLIP_PARITY_SKIP="name|name" leaves cases out: after a kernel breaks the CUDA context (an illegal
    // address is sticky, and every later launch fails too), the rest can run in a fresh process.
    TEST_CASE("parity: every CUDA kernel against the CPU op") {
        const char* skip_env = std::getenv("ACLIP_PARITY_SKIP");
        const std::string skip = str_cat("|", skip_env ? skip_env : "", "|");
        int passed = 0, failed = 0;
        for (const ParityCase& c : parity_cases()) {
            INFO("case: " << c.name);
            if (skip.find(str_cat("|", c.name, "|")) != std::string::npos) continue;
            if (!gpu_available(c.name.c_str())) continue;
            try {  // an error in one case is reported and the others still run
                run_case(c, Device::CUDA);
                ++passed;
            } catch (const std::exception& e) {
                ++failed;
                FAIL_CHECK("case '" << c.name << "' threw: " << std::string(e.what()));
                try {
                    cuda::synchronize();
                } catch (const std::exception&) {
                    FAIL_CHECK("the CUDA context is broken after case '"
                               << c.name << "'; the cases after it did not run");
                    std::printf("PARITY_CONTEXT_BROKEN_AT %s\n", c.name.c_str());
                    break;
                }
            }
        }
        MESSAGE("parity cases run without an exception: " << passed << ", threw: " << failed);
    }
}

}  // namespace aclip::test
