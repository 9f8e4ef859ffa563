// test_autograd.cpp: the tape's contract: gradients accumulate, fan-out sums, no_grad and detach cut
// the graph, in-place changes of saved tensors are caught, and backward releases what it held; backward
// from a given gradient; a leaf keeps a gradient no one else holds without copying it; an op may add into
// the gradient its input gathered from other uses (pending_gradient), bit for bit the sum; checkpointed
// functions give the plain gradients while keeping less.
#include "engine/autograd/checkpoint.h"
#include "engine/autograd/grad_mode.h"
#include "engine/autograd/gradcheck.h"
#include "engine/autograd/node.h"
#include "engine/ops/autocast.h"
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

    TEST_CASE("a leaf keeps a gradient made for it alone without a copy, and copies one it would share") {
        // Made for w alone: 3 * (the expanded ones of sum's backward), a fresh tensor that w keeps.
        Tensor w = from_vector(std::vector<float>(1 << 20, 1.0f), {1 << 20}).requires_grad_();
        Tensor loss = sum(mul_scalar(w, 3.0));
        const size_t before = cpu_bytes_in_use();
        cpu_bytes_reset_peak();
        loss.backward();
        CHECK(w.grad().to_vector<float>()[12345] == 3.0f);
        CHECK(cpu_bytes_peak() - before < 2 * w.numel() * sizeof(float));  // one gradient, not two
        // add's backward hands one tensor to both inputs: each leaf gets its own.
        Tensor a = from_vector<double>({1, 2}, {2}).requires_grad_(),
               b = from_vector<double>({3, 4}, {2}).requires_grad_();
        sum(add(a, b)).backward();
        CHECK(a.grad().data<double>() != b.grad().data<double>());
        a.grad().mul_(5.0);
        CHECK(b.grad().to_vector<double>() == std::vector<double>{1, 1});
    }

    TEST_CASE(
        "pending_gradient: an op may add its gradient into the one gathered from the input's other uses") {
        // A custom op y = 3 h that adds its gradient into what h already has from the add, and says so.
        int offered = 0;
        auto triple = [&](const Tensor& h) {
            return record("triple", mul_scalar(h.detach(), 3.0), {h}, [&](const Tensor& g) {
                Tensor pending = pending_gradient(0);
                if (!pending.defined()) return std::vector<Tensor>{mul_scalar(g, 3.0)};
                ++offered;
                pending.add_(mul_scalar(g, 3.0));
                return std::vector<Tensor>{pending};  // the same tensor: not added again
            });
        };
        Tensor x = from_vector<double>({1, 2}, {2}).requires_grad_();
        Tensor h = mul_scalar(x, 2.0);
        // The add's gradient reaches h first, and a step later (the mul) triple holds a gradient of its own:
        // h's is held by nothing else, so it is offered. (The outer mul makes that gradient contiguous:
        // sum's is an expanded one.)
        sum(mul_scalar(add(h, mul_scalar(triple(h), 1.0)), 1.0)).backward();
        CHECK(offered == 1);
        CHECK(x.grad().to_vector<double>() == std::vector<double>{8, 8});  // 2 * (1 + 3)
        x.zero_grad();
        Tensor h2 = mul_scalar(x, 2.0);
        sum(triple(h2)).backward();  // nothing gathered yet: not offered
        CHECK(offered == 1);
        CHECK(x.grad().to_vector<double>() == std::vector<double>{6, 6});
    }

    TEST_CASE("a residual LayerNorm adds into the stream's gradient: bit for bit the separate sum") {
        for (DType dt : {DType::F32, DType::BF16}) {
            CAPTURE(dtype_name(dt));
            Tensor leaf = aclip::test::random_tensor({5, 24}, 8, -1, 1, dt).requires_grad_();
            Tensor w = aclip::test::random_tensor({24}, 9, 0.5, 1.5, dt).requires_grad_();
            Tensor proj = aclip::test::random_tensor({24, 24}, 10, -0.3, 0.3, dt).requires_grad_();
            auto grad_of = [&](bool apart) {
                leaf.zero_grad();
                Tensor h = mul_scalar(leaf, 1.5);
                for (int block = 0; block < 3; ++block)  // h + linear(LN(h)), as a transformer block
                    h = add(h, linear(layer_norm(apart ? h.clone() : h, w, Tensor(), 1e-5), proj));
                const uint64_t before = gradients_added_in_place();
                sum(mul(h, h)).backward();
                CHECK(gradients_added_in_place() - before == (apart ? 0u : 3u));
                return leaf.grad().to(DType::F32).to_vector<float>();
            };
            // apart: LN reads a clone, whose gradient reaches h through the clone's backward and a sum
            CHECK(grad_of(false) == grad_of(true));
        }
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

    TEST_CASE("backward from a given gradient is the gradient of sum(out * gradient)") {
        Tensor x = aclip::test::random_tensor({3, 4}, 5).requires_grad_();
        Tensor g = aclip::test::random_tensor({3, 4}, 6);
        mul(x, x).backward(g);
        CHECK_CLOSE(x.grad(), mul_scalar(mul(x.detach(), g), 2.0), 1e-15, 0.0);
        CHECK(error_of([&] {
                  mul(x, x).backward(zeros({4, 3}, DType::F64));
              }).find("does not match") != std::string::npos);
    }

    TEST_CASE("checkpoint: the plain gradients, bit for bit (f32 and bf16 autocast), and an f64 gradcheck") {
        // two layers of a small MLP as the checkpointed function; its parameters are leaves it reads
        Tensor w1 = aclip::test::random_tensor({16, 32}, 7, -0.3, 0.3, DType::F32).requires_grad_();
        Tensor w2 = aclip::test::random_tensor({32, 16}, 8, -0.3, 0.3, DType::F32).requires_grad_();
        auto block = [&](const Tensor& h) {
            return add(h, linear(gelu(linear(h, w1.transpose(0, 1))), w2.transpose(0, 1)));
        };
        Tensor x0 = aclip::test::random_tensor({8, 16}, 9, -1, 1, DType::F32);
        Tensor a = aclip::test::random_tensor({16, 16}, 10, -0.5, 0.5, DType::F32).requires_grad_();
        auto run = [&](bool checkpointed, bool mixed) {
            w1.zero_grad(), w2.zero_grad(), a.zero_grad();
            Tensor loss;
            {
                AutocastGuard autocast(mixed);
                Tensor h = matmul(x0, a);  // the checkpointed input needs a gradient too
                h = checkpointed ? checkpoint(block, h, {w1, w2}) : block(h);
                loss = mean(mul(h, h));
            }
            loss.backward();
            return std::vector<Tensor>{loss.detach(), w1.grad().clone(), w2.grad().clone(), a.grad().clone()};
        };
        for (bool mixed : {false, true}) {
            CAPTURE(mixed);
            const std::vector<Tensor> plain = run(false, mixed), kept = run(true, mixed);
            for (size_t i = 0; i < plain.size(); ++i) CHECK_CLOSE(kept[i], plain[i], 0.0, 0.0);
        }
        GradcheckResult r = gradcheck(
            [](const std::vector<Tensor>& in) {
                auto f = [&](const Tensor& h) { return tanh(matmul(h, in[1])); };
                return checkpoint(f, mul(in[0], in[0]), {in[1]});
            },
            {aclip::test::random_tensor({3, 4}, 11).requires_grad_(),
             aclip::test::random_tensor({4, 2}, 12).requires_grad_()});
        INFO(r.worst);
        CHECK(r.ok);
    }

    TEST_CASE("checkpoint keeps only the input: the memory held for backward shrinks") {
        Tensor w = random_tensor_f32({256, 256});
        auto held = [&](bool checkpointed) {
            Tensor x = aclip::test::random_tensor({64, 256}, 3, -1, 1, DType::F32);
            const size_t before = cpu_bytes_in_use();
            auto layers = [&](const Tensor& in) {
                Tensor h = in;
                for (int i = 0; i < 4; ++i) h = gelu(linear(h, w));
                return h;
            };
            Tensor h = checkpointed ? checkpoint(layers, x, {w}) : layers(x);
            Tensor loss = mean(mul(h, h));
            const size_t during = cpu_bytes_in_use() - before;
            loss.backward();
            w.zero_grad();
            return during;
        };
        const size_t plain = held(false), kept = held(true);
        INFO("plain " << plain << " bytes, checkpointed " << kept);
        CHECK(plain > 8 * 64 * 256 * 4);  // four layers' products and GELU inputs
        CHECK(kept < 3 * 64 * 256 * 4);   // the output (and the loss's product)
    }
}
