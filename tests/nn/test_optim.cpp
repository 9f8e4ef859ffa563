// test_optim.cpp: the learning-rate schedule, gradient clipping, the EMA update and AdamW's parameter
// groups. (AdamW against PyTorch over 10 steps is in tests/ops/test_fixtures.cpp.)
#include <cmath>

#include "engine/autograd/grad_mode.h"
#include "engine/optim/adamw.h"
#include "engine/optim/schedule.h"
#include "test_util.h"

using namespace aclip;

TEST_SUITE("optim") {
    TEST_CASE("warmup is linear from start_lr, then a cosine reaches end_lr") {
        CosineSchedule s{1.0, 0.1, 0.01, 10, 110};
        CHECK(s.at(0) == doctest::Approx(0.1));
        CHECK(s.at(5) == doctest::Approx(0.55));
        CHECK(s.at(10) == doctest::Approx(1.0));
        CHECK(s.at(60) == doctest::Approx(0.01 + 0.5 * 0.99));  // half-way down the cosine
        CHECK(s.at(110) == doctest::Approx(0.01));
        CHECK(s.at(500) == doctest::Approx(0.01));  // stays at end_lr past the end
        CosineSchedule no_warmup{1.0, 0.0, 0.0, 0, 4};
        CHECK(no_warmup.at(0) == doctest::Approx(1.0));
    }

    TEST_CASE("clip_grad_norm scales to max_norm and reports the norm before clipping") {
        Tensor a = zeros({2}).requires_grad_(), b = zeros({1}).requires_grad_();
        add(sum(mul(a, from_vector<float>({3, 0}, {2}))), sum(mul(b, from_vector<float>({4}, {1}))))
            .backward();
        double norm = clip_grad_norm({a, b}, 1.0);
        CHECK(norm == doctest::Approx(5.0));
        CHECK(a.grad().to_vector<float>()[0] == doctest::Approx(0.6).epsilon(1e-5));
        CHECK(b.grad().to_vector<float>()[0] == doctest::Approx(0.8).epsilon(1e-5));
        CHECK(clip_grad_norm({a, b}, 10.0) ==
              doctest::Approx(1.0).epsilon(1e-5));  // below the limit: unchanged
        CHECK(a.grad().to_vector<float>()[0] == doctest::Approx(0.6).epsilon(1e-5));
    }

    TEST_CASE("ema_update moves the target towards the source by 1 - momentum") {
        Tensor t = from_vector<float>({1, 2}, {2}).requires_grad_(), s = from_vector<float>({3, 6}, {2});
        ema_update({t}, {s}, 0.75);
        CHECK(t.to_vector<float>() == std::vector<float>{1.5f, 3.0f});
        CHECK(aclip::test::error_of([&] { ema_update({t}, {zeros({3})}, 0.5); }).find("ema_update") !=
              std::string::npos);
    }

    TEST_CASE("AdamW: weight decay only in its group; parameters without a gradient do not move") {
        Tensor decayed = ones({1}).requires_grad_(), plain = ones({1}).requires_grad_(),
               untouched = ones({1}).requires_grad_();
        AdamW opt({{{decayed}, 0.5}, {{plain, untouched}, 0.0}});
        sum(add(mul_scalar(decayed, 0.0), mul_scalar(plain, 0.0))).backward();  // zero gradients
        opt.step(0.1);
        CHECK(decayed.item() == doctest::Approx(1.0 - 0.1 * 0.5));  // decay only; the Adam term is 0
        CHECK(plain.item() == doctest::Approx(1.0));
        CHECK(untouched.item() == 1.0);
        CHECK(opt.steps() == 1);
    }

    TEST_CASE("AdamW and ema_update leave each updated tensor's bf16 rounding beside it when asked") {
        Tensor w = from_vector<float>({0.3f, -1.7f, 2.9f}, {3}).requires_grad_(),
               idle = ones({2}).requires_grad_();
        AdamW opt({{{w, idle}, 0.1}});
        opt.keep_bf16_copies(true);
        sum(mul(w, from_vector<float>({1.0f, -2.0f, 0.5f}, {3}))).backward();
        opt.step(0.01);
        const std::shared_ptr<TensorImpl> copy = w.impl().rounded;
        REQUIRE(copy != nullptr);
        CHECK(idle.impl().rounded == nullptr);                    // no gradient: not updated, no copy
        const Tensor taken = w.detach().clone().to(DType::BF16);  // a cast of the updated values
        CHECK(Tensor(copy).to_vector<float>() == taken.to_vector<float>());
        {
            NoGradGuard no_grad;
            CHECK(w.to(DType::BF16).impl_ptr() == copy);  // what a product under autocast takes
        }
        Tensor t = from_vector<float>({1, 2}, {2}), s = from_vector<float>({3, 6.01f}, {2});
        ema_update({t}, {s}, 0.75, true);
        REQUIRE(t.impl().rounded != nullptr);
        CHECK(Tensor(t.impl().rounded).to_vector<float>() == t.clone().to(DType::BF16).to_vector<float>());
        ema_update({t}, {s}, 0.75);  // without: the old copy is stale, and dropped at the next cast
        CHECK(t.to(DType::BF16).to_vector<float>() == t.clone().to(DType::BF16).to_vector<float>());
    }
}
