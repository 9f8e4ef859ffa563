// test_nn.cpp: modules: hierarchical names, train/eval, freezing; the CLIP residual block and
// BatchNorm1d against PyTorch fixtures; and a small MLP that must learn a non-linear task.
#include <cmath>
#include <set>

#include "engine/autograd/grad_mode.h"
#include "engine/io/safetensors.h"
#include "engine/nn/layers.h"
#include "engine/optim/adamw.h"
#include "test_util.h"

using namespace aclip;

namespace {

const SafetensorsFile& fixtures() {
    static const SafetensorsFile f = load_safetensors(test::fixture_path("ops.safetensors"));
    return f;
}

struct TwoBlocks : Module {
    Generator gen{1};
    ResidualAttentionBlock a{8, 2, 32, Activation::GELU, 1e-6, gen};
    BatchNorm1d bn{8};
    void visit(Visitor& v) override {
        v.child("resblocks.0", a);
        v.child("bn", bn);
    }
};

}  // namespace

TEST_SUITE("nn") {
    TEST_CASE("parameter and buffer names follow PyTorch's state-dict keys") {
        TwoBlocks m;
        std::vector<std::string> names;
        for (auto& p : m.named_parameters()) names.push_back(p.name);
        CHECK(names == std::vector<std::string>{
                           "resblocks.0.ln_1.weight", "resblocks.0.ln_1.bias",
                           "resblocks.0.attn.in_proj_weight", "resblocks.0.attn.in_proj_bias",
                           "resblocks.0.attn.out_proj.weight", "resblocks.0.attn.out_proj.bias",
                           "resblocks.0.ln_2.weight", "resblocks.0.ln_2.bias", "resblocks.0.mlp.c_fc.weight",
                           "resblocks.0.mlp.c_fc.bias", "resblocks.0.mlp.c_proj.weight",
                           "resblocks.0.mlp.c_proj.bias", "bn.weight", "bn.bias"});
        std::vector<std::string> buffers;
        for (auto& b : m.named_buffers()) buffers.push_back(b.name);
        CHECK(buffers ==
              std::vector<std::string>{"bn.running_mean", "bn.running_var", "bn.num_batches_tracked"});
        CHECK(m.num_parameters() == 2 * 8 + 3 * 64 + 24 + 64 + 8 + 2 * 8 + 256 + 32 + 256 + 8 + 16);
    }

    TEST_CASE("train/eval reaches every child; freezing stops gradients") {
        TwoBlocks m;
        m.eval();
        CHECK_FALSE(m.bn.training());
        m.train();
        CHECK(m.bn.training());
        m.a.set_requires_grad(false);
        Tensor x = aclip::test::random_tensor({3, 4, 8}, 2, -1, 1, DType::F32);
        Tensor y = m.a.forward(x, false);
        CHECK_FALSE(y.requires_grad());
        m.a.set_requires_grad(true);
        sum(m.a.forward(x, false)).backward();
        CHECK(m.a.attn.in_proj_weight.grad().defined());
    }

    TEST_CASE("the residual attention block matches PyTorch, forward and backward") {
        const SafetensorsFile& f = fixtures();
        for (const char* prefix : {"block_text", "block_vision"}) {
            CAPTURE(prefix);
            bool text = std::string(prefix) == "block_text";
            Generator gen(0);
            ResidualAttentionBlock block(16, 2, 64, text ? Activation::QuickGELU : Activation::GELU, 1e-5,
                                         gen);
            for (auto& p : block.named_parameters()) {
                NoGradGuard no_grad;
                p.tensor->copy_(f.get(std::string(prefix) + ".param." + p.name));
            }
            Tensor x = f.get(std::string(prefix) + ".x").clone().requires_grad_();
            Tensor y = block.forward(x, text);
            // f32 through ~10 chained ops with O(1) values: a few hundred roundings at most
            CHECK_CLOSE(y, f.get(std::string(prefix) + ".out"), 1e-5, 1e-5);
            sum(mul(y, f.get(std::string(prefix) + ".w"))).backward();
            CHECK_CLOSE(x.grad(), f.get(std::string(prefix) + ".grad_x"), 2e-5, 1e-5);
            for (auto& p : block.named_parameters()) {
                CAPTURE(p.name);
                // parameter gradients sum over B*T = 10 rows: one more order of accumulation
                CHECK_CLOSE(p.tensor->grad(), f.get(std::string(prefix) + ".grad." + p.name), 5e-5, 1e-5);
            }
        }
    }

    TEST_CASE("BatchNorm1d matches PyTorch: batch statistics, running statistics, eval") {
        const SafetensorsFile& f = fixtures();
        BatchNorm1d bn(5, 1e-5, 0.1);
        {
            NoGradGuard no_grad;
            bn.weight.copy_(f.get("bn.weight"));
            bn.bias.copy_(f.get("bn.bias"));
        }
        for (int i = 0; i < 2; ++i)
            CHECK_CLOSE(bn.forward(f.get("bn.x" + std::to_string(i))), f.get("bn.y" + std::to_string(i)),
                        1e-5, 1e-5);
        CHECK_CLOSE(bn.running_mean, f.get("bn.running_mean"), 1e-6, 1e-5);
        CHECK_CLOSE(bn.running_var, f.get("bn.running_var"), 1e-6, 1e-5);
        CHECK(bn.num_batches_tracked.to_vector<int64_t>()[0] == 2);
        bn.eval();
        CHECK_CLOSE(bn.forward(f.get("bn.x_eval")), f.get("bn.y_eval"), 1e-5, 1e-5);
    }

    TEST_CASE("BatchNorm1d counts its batches through loads and replacements of the counter") {
        BatchNorm1d bn(3);
        const Tensor x = from_vector(std::vector<float>{1, 2, 3, 4, 5, 7, 0, 1, 1}, {3, 3});
        auto count = [&] { return bn.num_batches_tracked.to_vector<int64_t>()[0]; };
        for (int i = 0; i < 3; ++i) (void)bn.forward(x);
        CHECK(count() == 3);
        {
            NoGradGuard no_grad;
            bn.num_batches_tracked.copy_(scalar_tensor(10, DType::I64));  // as a checkpoint load writes it
        }
        (void)bn.forward(x);
        CHECK(count() == 11);
        bn.num_batches_tracked = scalar_tensor(40, DType::I64);  // a new tensor (a move to another device)
        (void)bn.forward(x);
        CHECK(count() == 41);
        bn.eval();
        (void)bn.forward(x);
        CHECK(count() == 41);  // eval does not count
    }

    TEST_CASE("an MLP learns the two-spirals task") {
        // 2 interleaved spirals, 200 points; a linear model cannot exceed ~60% accuracy on them.
        const int64_t n = 200;
        std::vector<float> xs;
        std::vector<int64_t> ys;
        for (int64_t i = 0; i < n; ++i) {
            int64_t cls = i % 2;
            double t = 0.25 + 3.0 * static_cast<double>(i / 2) / (n / 2);  // up to ~1.5 turns
            double angle = t * 3.14159 + cls * 3.14159;
            xs.push_back(static_cast<float>(t * std::cos(angle) / 3.25));
            xs.push_back(static_cast<float>(t * std::sin(angle) / 3.25));
            ys.push_back(cls);
        }
        Tensor x = from_vector(xs, {n, 2}), y = from_vector(ys, {n});
        Generator gen(5);
        Linear l1(2, 64, true, gen), l2(64, 64, true, gen), l3(64, 2, true, gen);
        std::vector<Tensor> params = {l1.weight, l1.bias, l2.weight, l2.bias, l3.weight, l3.bias};
        AdamW opt({{params, 0.0}}, 0.9, 0.999, 1e-8);
        double loss_value = 0;
        for (int step = 0; step < 600; ++step) {
            opt.zero_grad();
            Tensor logits = l3.forward(aclip::tanh(l2.forward(aclip::tanh(l1.forward(x)))));
            Tensor loss = cross_entropy(logits, y);
            loss.backward();
            opt.step(1e-2);
            loss_value = loss.item();
        }
        CHECK(loss_value < 0.05);
        NoGradGuard no_grad;
        Tensor pred = argmax(l3.forward(aclip::tanh(l2.forward(aclip::tanh(l1.forward(x))))), -1);
        CHECK(sum(equal(pred.to(DType::F32), y.to(DType::F32)).to(DType::F32)).item() >= 0.99 * n);
    }
}
