// test_fixtures.cpp: every op against PyTorch, on the fixtures written by
// tools/reference/make_op_fixtures.py (tests/fixtures/ops.safetensors). For each case the op runs on the
// stored f32 inputs; the output and the gradient of sum(out * w) for each input are compared.
#include <functional>
#include <map>
#include <set>

#include "engine/io/safetensors.h"
#include "engine/optim/adamw.h"
#include "engine/optim/schedule.h"
#include "ops/op_cases.h"
#include "test_util.h"

using namespace aclip;
using aclip::test::fixture_path;
using aclip::test::op_cases;

namespace {

const SafetensorsFile& fixtures() {
    static const SafetensorsFile f = load_safetensors(fixture_path("ops.safetensors"));
    return f;
}

std::set<std::string> fixture_cases() {
    std::set<std::string> names;
    for (const auto& [name, t] : fixtures().tensors)
        if (name.size() > 4 && name.substr(name.size() - 4) == ".in0")
            names.insert(name.substr(0, name.size() - 4));
    return names;
}

// f32 tolerance: inputs are O(1); PyTorch and the engine both compute in f32 and differ only in the
// order of roundings (each ~6e-8 relative); 1e-5 absolute + 1e-5 relative covers ~100 of them.
constexpr double kAtol = 1e-5, kRtol = 1e-5;

}  // namespace

TEST_SUITE("fixtures") {
    TEST_CASE("every fixture case has an engine implementation and every implementation a fixture") {
        std::set<std::string> in_file = fixture_cases(), in_table;
        for (const auto& [name, fn] : op_cases()) in_table.insert(name);
        for (const std::string& n : in_file)
            CHECK_MESSAGE(in_table.count(n), "fixture case without engine case: " << n);
        for (const std::string& n : in_table)
            CHECK_MESSAGE(in_file.count(n), "engine case without fixture: " << n);
    }

    TEST_CASE("ops match PyTorch, forward and backward") {
        const SafetensorsFile& f = fixtures();
        for (const auto& [name, fn] : op_cases()) {
            CAPTURE(name);
            std::vector<Tensor> inputs;
            for (int i = 0; f.has(name + ".in" + std::to_string(i)); ++i) {
                Tensor t = f.get(name + ".in" + std::to_string(i)).clone();
                if (f.has(name + ".grad" + std::to_string(i))) t.requires_grad_();
                inputs.push_back(t);
            }
            Tensor out = fn(inputs);
            const Tensor& expected = f.get(name + ".out");
            CHECK(out.dtype() == expected.dtype());
            CHECK_CLOSE(out, expected, kAtol, kRtol);
            if (!f.has(name + ".w")) continue;
            sum(mul(out, f.get(name + ".w"))).backward();
            for (size_t i = 0; i < inputs.size(); ++i) {
                std::string key = name + ".grad" + std::to_string(i);
                if (!f.has(key)) continue;
                CAPTURE(key);
                REQUIRE(inputs[i].grad().defined());
                CHECK_CLOSE(inputs[i].grad(), f.get(key), kAtol, kRtol);
            }
        }
    }
}

TEST_SUITE("optim") {
    TEST_CASE("AdamW with warmup + cosine schedule matches PyTorch over 10 steps") {
        const SafetensorsFile& f = fixtures();
        Tensor w = f.get("adamw.w0").clone().requires_grad_(), b = f.get("adamw.b0").clone().requires_grad_();
        const Tensor &x = f.get("adamw.x"), &y = f.get("adamw.y");
        AdamW opt({{{w}, 0.1}, {{b}, 0.0}}, 0.9, 0.98, 1e-6);
        CosineSchedule sched{5e-2, 1e-3, 1e-3, 3, 10};
        std::vector<double> expected = f.get("adamw.losses").to_vector<double>();
        for (int step = 0; step < 10; ++step) {
            opt.zero_grad();
            Tensor d = sub(add(matmul(x, w), b), y);
            Tensor loss = mean(mul(d, d));
            loss.backward();
            // losses are f32 sums of 24 squares: agree to a few f32 ulps of their size
            CHECK(loss.item() == doctest::Approx(expected[step]).epsilon(1e-5));
            opt.step(sched.at(step));
        }
        CHECK_CLOSE(w, f.get("adamw.w10"), 1e-6, 1e-5);
        CHECK_CLOSE(b, f.get("adamw.b10"), 1e-6, 1e-5);
    }
}
