// test_autocast.cpp: mixed precision (engine/ops/autocast.h). Matrix products run in bf16 with f32
// master weights whose gradients arrive in f32; mixed elementwise operands compute in f32; norms and
// losses run in f32; outside a guard nothing changes. A small transformer trained one step under
// autocast must stay within bf16 accuracy of the f32 run.
#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/nn/init.h"
#include "engine/nn/layers.h"
#include "engine/ops/autocast.h"
#include "test_util.h"

using namespace aclip;
using aclip::test::error_of;
using aclip::test::norm_rel_error;
using aclip::test::random_tensor;

TEST_SUITE("unit") {
    TEST_CASE("autocast: linear runs in bf16, f32 masters get f32 gradients") {
        Tensor x = random_tensor({5, 8}, 1, -1, 1, DType::F32).requires_grad_();
        Tensor w = random_tensor({3, 8}, 2, -1, 1, DType::F32).requires_grad_();
        Tensor b = random_tensor({3}, 3, -1, 1, DType::F32).requires_grad_();
        Tensor y;
        {
            AutocastGuard autocast;
            y = linear(x, w, b);
        }
        CHECK(y.dtype() == DType::BF16);
        sum(y.to(DType::F32)).backward();
        CHECK(w.grad().dtype() == DType::F32);
        CHECK(x.grad().dtype() == DType::F32);
        CHECK(b.grad().dtype() == DType::F32);
        Tensor ref = linear(x.detach(), w.detach(), b.detach());
        CHECK(norm_rel_error(y, ref) < 1e-2);  // bf16 inputs and output: 2^-8 relative per rounding
        // The master weight's gradient comes out of the product in f32 (no bf16 copy of it is recorded):
        // with an output gradient of ones, each row is the column sums of x as bf16, summed in f32 and not
        // rounded to bf16 (5-term sums of 8-bit mantissas: some need more bits).
        const std::vector<float> x16 = x.detach().to(DType::BF16).to(DType::F32).to_vector<float>();
        const std::vector<float> gw = w.grad().to_vector<float>();
        bool wider_than_bf16 = false;
        for (int64_t j = 0; j < 3; ++j)
            for (int64_t k = 0; k < 8; ++k) {
                float column = 0;
                for (int64_t n = 0; n < 5; ++n) column += x16[static_cast<size_t>(n * 8 + k)];
                const float got = gw[static_cast<size_t>(j * 8 + k)];
                CHECK(got == doctest::Approx(column).epsilon(1e-6));  // f32 sums in another order
                wider_than_bf16 |= bf16_to_f32(bf16_from_f32(got)) != got;
            }
        CHECK(wider_than_bf16);
        CHECK(b.grad().to_vector<float>() == std::vector<float>(3, 5.0f));  // the rows of ones, summed
    }

    TEST_CASE("autocast: linear_add keeps the f32 stream: the bf16 product is added unrounded") {
        Tensor r = random_tensor({6, 3}, 4, -1, 1, DType::F32).requires_grad_();
        Tensor x = random_tensor({6, 40}, 5, -1, 1, DType::F32).requires_grad_();
        Tensor w = random_tensor({3, 40}, 6, -1, 1, DType::F32).requires_grad_();
        Tensor b = random_tensor({3}, 7, -1, 1, DType::F32).requires_grad_();
        Tensor y, rounded;
        {
            AutocastGuard autocast;
            y = linear_add(r, x, w, b);
            NoGradGuard no_grad;
            rounded = add(r, linear(x, w, b));  // the branch rounded to bf16 first
        }
        CHECK(y.dtype() == DType::F32);
        Tensor expected;
        {
            NoGradGuard no_grad;  // the product of the bf16-rounded inputs in f32, then the sum
            auto bf16_values = [](const Tensor& t) { return t.to(DType::BF16).to(DType::F32); };
            expected = add(r, linear(bf16_values(x), bf16_values(w), b));
        }
        CHECK(y.to_vector<float>() == expected.to_vector<float>());
        CHECK(y.to_vector<float>() != rounded.to_vector<float>());  // 40-term sums: bf16 rounding shows
        sum(y).backward();
        CHECK(r.grad().to_vector<float>() == std::vector<float>(18, 1.0f));  // the stream's gradient, as is
        for (const Tensor* t : {&x, &w, &b}) CHECK(t->grad().dtype() == DType::F32);
    }

    TEST_CASE("autocast: a residual stream's LayerNorm leaves its f32 gradient's bf16 rounding beside it") {
        // r -> layer_norm -> linear_add(r, ...), as in a pre-norm block: r's gradient, the linear_add's
        // pass-through with the LayerNorm's added into it, arrives at r's producer (here a probe standing
        // for the previous block's linear_add) with its bf16 rounding beside it.
        const Tensor r0 = random_tensor({6, 8}, 11, -1, 1, DType::F32).requires_grad_();
        const Tensor w = random_tensor({8, 8}, 12, -1, 1, DType::F32).requires_grad_();
        const Tensor lw = random_tensor({8}, 13, 0.5, 1.5, DType::F32),
                     lb = random_tensor({8}, 14, -1, 1, DType::F32);
        const Tensor weights = random_tensor({6, 8}, 15, -1, 1, DType::F32);
        for (bool on : {true, false}) {
            CAPTURE(on);
            bool left = false;
            std::vector<float> rounded, cast;
            const Tensor r = record("probe", mul_scalar(r0.detach(), 1.0), {r0}, [&](const Tensor& g) {
                left = g.impl().rounded != nullptr;
                if (left) rounded = Tensor(g.impl().rounded).to_vector<float>();
                cast = g.clone().to(DType::BF16).to_vector<float>();
                return std::vector<Tensor>{g};
            });
            Tensor y;
            {
                AutocastGuard autocast(on);
                y = linear_add(r, layer_norm(r, lw, lb, 1e-5), w, Tensor());
            }
            sum(mul(y, weights)).backward();
            CHECK(left == on);               // only under autocast, where the products take bf16
            if (on) CHECK(rounded == cast);  // the values a cast gives
        }
    }

    TEST_CASE("autocast: mixed elementwise operands compute in f32; without a guard they are an error") {
        Tensor a = random_tensor({4}, 4, -1, 1, DType::F32), b = random_tensor({4}, 5, -1, 1, DType::BF16);
        CHECK(error_of([&] { (void)add(a, b); }).find("dtypes differ") != std::string::npos);
        AutocastGuard autocast;
        CHECK(add(a, b).dtype() == DType::F32);
        CHECK(mul(b, a).dtype() == DType::F32);
        CHECK(add(b, b).dtype() == DType::BF16);  // same dtypes are left alone
        // add and sub read the bf16 operand as it is (no cast recorded); each gradient has its input's dtype
        Tensor x = a.detach().requires_grad_(), y = b.detach().requires_grad_();
        Tensor s = sub(add(x, y), mul_scalar(y, 0.5));
        CHECK(s.dtype() == DType::F32);
        CHECK(add(x, y).to_vector<double>() == add(x, y.to(DType::F32)).to_vector<double>());
        sum(s).backward();
        CHECK(x.grad().dtype() == DType::F32);
        CHECK(y.grad().dtype() == DType::BF16);
        CHECK(y.grad().to_vector<double>() == std::vector<double>(4, 0.5));
    }

    TEST_CASE("autocast: layer_norm and cross_entropy run in f32; guards nest and restore") {
        Tensor x = random_tensor({3, 6}, 6, -1, 1, DType::BF16);
        Tensor w = ones({6}), bias = zeros({6});
        AutocastGuard outer;
        CHECK(layer_norm(x, w, bias, 1e-5).dtype() == DType::F32);
        CHECK(cross_entropy(x, from_vector(std::vector<int64_t>{0, 5, 2}, {3})).dtype() == DType::F32);
        {
            AutocastGuard off(false);
            CHECK_FALSE(autocast_enabled());
        }
        CHECK(autocast_enabled());
    }

    TEST_CASE("layer_norm with a bf16 output is the f32 op and a cast, bit for bit, forward and backward") {
        const Tensor x = random_tensor({7, 24}, 11, -2, 2, DType::F32), g = random_tensor({7, 24}, 12, -1, 1);
        const Tensor w = random_tensor({24}, 13, 0.5, 1.5, DType::F32),
                     b = random_tensor({24}, 14, -1, 1, DType::F32);
        auto run = [&](bool fused) {  // y as bf16, and the gradients of sum(y * g) with g rounded to bf16
            Tensor xi = x.detach().requires_grad_(), wi = w.detach().requires_grad_(),
                   bi = b.detach().requires_grad_();
            Tensor y = fused ? layer_norm(xi, wi, bi, 1e-5, DType::BF16)
                             : layer_norm(xi, wi, bi, 1e-5).to(DType::BF16);
            sum(mul(y.to(DType::F32), g.to(DType::BF16).to(DType::F32))).backward();
            return std::vector<Tensor>{y, xi.grad(), wi.grad(), bi.grad()};
        };
        const std::vector<Tensor> fused = run(true), composed = run(false);
        CHECK(fused[0].dtype() == DType::BF16);
        for (size_t i = 0; i < fused.size(); ++i) {
            CAPTURE(i);
            CHECK(fused[i].dtype() == composed[i].dtype());
            CHECK(fused[i].to_vector<double>() == composed[i].to_vector<double>());
        }
        CHECK(error_of([&] {
                  layer_norm(x.to(DType::BF16), Tensor(), Tensor(), 1e-5, DType::F32);
              }).find("layer_norm: output dtype f32 for an input of bf16") != std::string::npos);
        // a transformer block under autocast hands its matrix products bf16 straight from its LayerNorms
        Generator gen(3);
        ResidualAttentionBlock block(16, 2, 32, Activation::GELU, 1e-5, gen);
        const Tensor in = random_tensor({2, 5, 16}, 15, -1, 1, DType::F32);
        AutocastGuard autocast;
        CHECK(block.ln_1.forward(in, autocast_matmul_dtype()).dtype() == DType::BF16);
        CHECK(block.forward(in, false, nullptr).dtype() == DType::F32);  // the residual stream stays f32
    }

    TEST_CASE("autocast: a transformer's loss and gradients stay within bf16 accuracy of f32") {
        Generator gen(11);
        Transformer net(32, 2, 4, 128, Activation::GELU, 1e-5, gen);
        Tensor x = random_tensor({4, 9, 32}, 7, -1, 1, DType::F32);
        Tensor target = random_tensor({4, 9, 32}, 8, -1, 1, DType::F32);
        auto run = [&](bool mixed) {
            net.zero_grad();
            Tensor loss;
            {
                AutocastGuard autocast(mixed);  // forward only; backward follows the recorded dtypes
                Tensor y = net.forward(x, false);
                loss = mean(mul(sub(y, target), sub(y, target)));
            }
            loss.backward();
            std::vector<Tensor> grads;
            for (Tensor& p : net.parameters()) grads.push_back(p.grad().clone());
            return std::pair{loss.item(), grads};
        };
        auto [loss32, grads32] = run(false);
        auto [loss16, grads16] = run(true);
        CHECK(std::abs(loss16 - loss32) / loss32 < 1e-2);
        double worst = 0;
        for (size_t i = 0; i < grads32.size(); ++i) {
            CHECK(grads16[i].dtype() == DType::F32);
            worst = std::max(worst, norm_rel_error(grads16[i], grads32[i]));
        }
        INFO("worst parameter-gradient relative error " << worst);
        // bf16 keeps 8 mantissa bits (2^-8 = 3.9e-3 per rounding, half that on average); two layers
        // forward and backward chain a dozen roundings along any path: measured 5.5e-3, bound 2e-2.
        CHECK(worst < 2e-2);
    }
}
