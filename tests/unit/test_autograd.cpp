// test_autograd.cpp: the tape's contract: gradients accumulate, fan-out sums, no_grad and detach cut
// the graph, in-place changes of saved tensors are caught, and backward releases what it held.
#include "engine/autograd/grad_mode.h"
#include "test_util.h"

using namespace aclip;
using aclip::test::error_of;

namespace {
Tensor random_tensor_f32(const Shape& s) {
    return aclip::test::random_tensor(s, 1, -0.1, 0.1, DType::F32).requires_grad_();
}
}  // namespace

TEST_SUITE("unit") {
    TEST_CASE("gradients accumulate across backward calls and over fan-out") {
        Tensor x = from_vector<double>({1, 2, 3}, {3}).requires_grad_();
        Tensor y = sum(add(mul(x, x), x));  // dy/dx = 2x + 1 (x used three times)
        y.backward();
        CHECK(x.grad().to_vector<double>() == std::vector<double>{3, 5, 7});
        sum(mul_scalar(x, 2.0)).backward();  // accumulates: += 2
        CHECK(x.grad().to_vector<double>() == std::vector<double>{5, 7, 9});
        x.zero_grad();
        CHECK_FALSE(x.grad().defined());
    }

    TEST_CASE("no_grad records nothing; detach cuts the graph") {
        Tensor x = from_vector<double>({1, 2}, {2}).requires_grad_();
        {
            NoGradGuard no_grad;
            Tensor y = mul(x, x);
            CHECK_FALSE(y.requires_grad());
        }
        CHECK(grad_enabled());
        Tensor z = add(mul(x.detach(), x), x);  // d/dx = detached x + 1
        sum(z).backward();
        CHECK(x.grad().to_vector<double>() == std::vector<double>{2, 3});
        CHECK(error_of([&] { sum(x.detach()).backward(); }).find("does not require grad") !=
              std::string::npos);
    }

    TEST_CASE("an in-place change of a saved tensor is an error at backward, not a wrong gradient") {
        Tensor x = from_vector<double>({0.5, 1.0}, {2}).requires_grad_();
        Tensor y = exp(mul_scalar(x, 1.0));  // exp saves its output y
        Tensor loss = sum(y);
        {
            NoGradGuard no_grad;
            y.add_(ones({2}, DType::F64));
        }
        std::string msg = error_of([&] { loss.backward(); });
        CHECK(msg.find("backward of exp") != std::string::npos);
        CHECK(msg.find("modified in place") != std::string::npos);
    }

    TEST_CASE("backward twice through the same graph is a clear error") {
        Tensor x = from_vector<double>({1}, {1}).requires_grad_();
        Tensor loss = sum(exp(x));
        loss.backward();
        CHECK(error_of([&] { loss.backward(); }).find("a second time") != std::string::npos);
    }

    TEST_CASE("backward needs a one-element tensor") {
        Tensor x = from_vector<double>({1, 2}, {2}).requires_grad_();
        CHECK(error_of([&] { mul(x, x).backward(); }).find("one-element") != std::string::npos);
    }

    TEST_CASE("memory held for backward returns to its baseline after backward") {
        Tensor w = random_tensor_f32({256, 256});
        const size_t baseline = cpu_bytes_in_use();
        size_t during = 0;
        {
            Tensor x = aclip::test::random_tensor({64, 256}, 3, -1, 1, DType::F32);
            Tensor loss;
            {
                Tensor h = gelu(linear(x, w));
                for (int i = 0; i < 4; ++i) h = layer_norm(gelu(linear(h, w)), Tensor(), Tensor(), 1e-5);
                loss = mean(mul(h, h));
            }
            during = cpu_bytes_in_use();
            loss.backward();
            // what is left: x, w's gradient, the loss; the saved activations are gone
            size_t after = cpu_bytes_in_use();
            CHECK(after < during);
            CHECK(after <= baseline + x.numel() * 4 + w.numel() * 4 + 64);
        }
        w.zero_grad();
        CHECK(during > baseline + 5 * 64 * 256 * 4);  // the graph really held activations
        CHECK(cpu_bytes_in_use() == baseline);
    }
}
