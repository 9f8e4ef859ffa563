// test_ops_basic.cpp: op properties that fixtures do not pin down: softmax_backward as softmax's gradient,
// sum's dtype, dropout's statistics and seeding, ordering ties, duplicate indices, exact identities of resize
// and pooling, masks in attention, and matmul over strided and broadcast operands.
#include <cmath>

#include "engine/autograd/grad_mode.h"
#include "test_util.h"

using namespace aclip;
using aclip::test::error_of;
using aclip::test::random_tensor;

TEST_SUITE("ops") {
    TEST_CASE("softmax_backward is softmax's own gradient; it checks shapes and records nothing") {
        Tensor x = random_tensor({4, 3, 7}, 41, -2, 2, DType::F64).requires_grad_();
        const Tensor g = random_tensor({4, 3, 7}, 42, -1, 1, DType::F64);
        const Tensor y = softmax(x, -1);
        sum(mul(y, g)).backward();
        const Tensor dx = softmax_backward(y.detach(), g);
        CHECK_CLOSE(dx, x.grad(), 1e-15, 0.0);  // the same kernel on the same values
        CHECK(!softmax_backward(y, g).requires_grad());
        CHECK(error_of([&] { softmax_backward(y.detach(), g.narrow(2, 0, 6)); }).find("one shape") !=
              std::string::npos);
    }

    TEST_CASE("gather_rows: each sample's rows, as gather with an expanded index, forward and backward") {
        Tensor x = random_tensor({3, 5, 4}, 31).requires_grad_();
        Tensor rows =
            from_vector(std::vector<int64_t>{4, 0, 2, 1, 1, 3}, {3, 2});  // a repeated row in sample 1
        Tensor w = random_tensor({3, 2, 4}, 32);
        Tensor a = gather_rows(x, rows);
        sum(mul(a, w)).backward();
        Tensor ga = x.grad().clone();
        x.zero_grad();
        Tensor b = gather(x, 1, rows.unsqueeze(-1).expand({3, 2, 4}));
        sum(mul(b, w)).backward();
        CHECK_CLOSE(a, b, 0.0, 0.0);
        CHECK_CLOSE(ga, x.grad(), 1e-15, 0.0);  // the repeated row's two contributions, summed
        CHECK(error_of([&] {
                  gather_rows(x, from_vector(std::vector<int64_t>{0, 5, 0, 0, 0, 0}, {3, 2}));
              }).find("out of range") != std::string::npos);
        CHECK(error_of([&] { gather_rows(x, rows.reshape({6})); }).find("(B, K)") != std::string::npos);
    }

    TEST_CASE("dropout: keeps about 1-p, scales by 1/(1-p), same seed same mask, eval is identity") {
        Tensor x = ones({100000});
        Tensor y = dropout(x, 0.25, 9, 0);
        std::vector<float> v = y.to_vector<float>();
        int64_t kept = 0;
        for (float e : v) {
            CHECK((e == 0.0f || e == doctest::Approx(1.0 / 0.75)));
            kept += e != 0.0f;
        }
        // binomial(1e5, 0.75): std 137, so +-1% (1000) is over 7 sigma
        CHECK(std::abs(kept - 75000) < 1000);
        CHECK(dropout(x, 0.25, 9, 0).to_vector<float>() == v);
        CHECK(dropout(x, 0.25, 9, 1000).to_vector<float>() != v);
        CHECK(dropout(x, 0.25, 9, 0, /*training=*/false).same(x));
        CHECK(error_of([&] { dropout(x, 1.0, 0, 0); }).find("dropout") != std::string::npos);
    }

    TEST_CASE("sum in f32 of bf16 terms: the f32 sum of the same values, unrounded; the gradient in bf16") {
        Tensor x = random_tensor({300, 5}, 43, -1, 1, DType::BF16).requires_grad_();
        const Tensor s = sum(x, {0}, false, DType::F32);  // (5)
        CHECK(s.dtype() == DType::F32);
        CHECK_CLOSE(s, sum(x.detach().to(DType::F32), {0}), 0.0, 0.0);  // both f64 sums of the same values
        // rounding to bf16 would have moved some of the five sums (each in [-300, 300], 2^-8 relative)
        CHECK(test::norm_rel_error(sum(x.detach(), {0}).to(DType::F32), s) > 0.0);
        const Tensor g = random_tensor({5}, 44, -1, 1, DType::F32);
        s.backward(g);
        CHECK(x.grad().dtype() == DType::BF16);
        CHECK_CLOSE(x.grad(), g.to(DType::BF16).reshape({1, 5}).expand({300, 5}), 0.0, 0.0);
        CHECK(error_of([&] {
                  sum(random_tensor({3}, 45, -1, 1, DType::F32), {}, false, DType::BF16);
              }).find("f32 from bf16") != std::string::npos);
    }

    TEST_CASE("topk and argsort: ties keep the lower index first") {
        Tensor x = from_vector<float>({1, 3, 3, 2, 3, 0}, {6});
        auto [values, index] = topk(x, 3);
        CHECK(index.to_vector<int64_t>() == std::vector<int64_t>{1, 2, 4});
        CHECK(values.to_vector<float>() == std::vector<float>{3, 3, 3});
        CHECK(argsort(x).to_vector<int64_t>() == std::vector<int64_t>{5, 0, 3, 1, 2, 4});
        CHECK(argsort(x, true).to_vector<int64_t>() == std::vector<int64_t>{1, 2, 4, 3, 0, 5});
        CHECK_FALSE(topk(x.clone().requires_grad_(), 2).first.requires_grad());
    }

    TEST_CASE("scatter_add sums duplicate indices; index_select backward accumulates repeats") {
        Tensor out = scatter_add(zeros({1, 3}), 1, from_vector<int64_t>({2, 2, 0}, {1, 3}),
                                 from_vector<float>({1, 2, 5}, {1, 3}));
        CHECK(out.to_vector<float>() == std::vector<float>{5, 0, 3});
        Tensor w = ones({3, 2}).requires_grad_();
        sum(index_select(w, 0, from_vector<int64_t>({1, 1, 2}, {3}))).backward();
        CHECK(w.grad().to_vector<float>() == std::vector<float>{0, 0, 2, 2, 1, 1});
    }

    TEST_CASE("resize to the same size and pooling of a constant map are identities") {
        Tensor x = random_tensor({2, 3, 5, 7}, 1, -1, 1, DType::F32);
        CHECK_CLOSE(resize_bilinear(x, 5, 7), x, 0.0, 0.0);
        Tensor c = full({1, 1, 4, 6}, 2.5);
        CHECK_CLOSE(avg_pool2d(c, 2), full({1, 1, 2, 3}, 2.5), 0.0, 0.0);
        CHECK(error_of([&] { avg_pool2d(x, 2); }).find("must divide") != std::string::npos);
    }

    TEST_CASE(
        "attention: probabilities are rows of a distribution; causal ones are exactly 0 above the diagonal") {
        Tensor q = random_tensor({2, 3, 6, 8}, 2, -2, 2, DType::F32),
               k = random_tensor({2, 3, 6, 8}, 3, -2, 2, DType::F32);
        AttentionResult r = scaled_dot_product_attention(q, k, k, true, true);
        CHECK_CLOSE(sum(r.probs, {-1}), ones({2, 3, 6}), 1e-6, 0.0);
        std::vector<float> p = r.probs.to_vector<float>();
        for (int64_t i = 0; i < 6; ++i)
            for (int64_t j = i + 1; j < 6; ++j) CHECK(p[i * 6 + j] == 0.0f);
        CHECK(p[0] == 1.0f);  // the first query sees only itself
    }

    TEST_CASE(
        "matmul over transposed, sliced and broadcast (stride 0) operands equals the contiguous product") {
        Tensor a = random_tensor({4, 6, 5}, 4, -1, 1, DType::F64),
               b = random_tensor({5, 7}, 5, -1, 1, DType::F64);
        Tensor ref = matmul(a.contiguous(), b.unsqueeze(0).expand({4, 5, 7}).contiguous());
        CHECK_CLOSE(matmul(a, b.unsqueeze(0).expand({4, 5, 7})), ref, 1e-12, 0.0);
        Tensor at = a.transpose(1, 2).contiguous().transpose(1, 2);  // same values, column-major storage
        CHECK_CLOSE(matmul(at, b), ref, 1e-12, 0.0);
        Tensor wide = random_tensor({4, 6, 9}, 6, -1, 1, DType::F64);
        Tensor sliced = wide.narrow(2, 2, 5);  // rows with stride 9 > 5
        CHECK_CLOSE(matmul(sliced, b), matmul(sliced.contiguous(), b), 1e-12, 0.0);
        Tensor base = random_tensor({6, 10}, 7, -1, 1, DType::F64);
        Tensor every_other = as_strided(base, {6, 5}, {10, 2}, 0);  // neither layout: copied for the GEMM
        CHECK_CLOSE(matmul(every_other, b), matmul(every_other.contiguous(), b), 1e-12, 0.0);
    }
}
