// test_tensor.cpp: layout and views (shared storage, strides), broadcasting edge cases, contiguous(),
// conversion, printing, HostCopy of a CPU tensor, and the errors for bad shapes, dtypes and devices.
#include <sstream>

#include "engine/autograd/grad_mode.h"
#include "engine/core/host_copy.h"
#include "test_util.h"

using namespace aclip;
using aclip::test::error_of;

namespace {
Tensor iota(const Shape& s) {
    return arange(shape_numel(s), DType::F32).reshape(s);
}
}  // namespace

TEST_SUITE("unit") {
    TEST_CASE("views share storage and have the expected strides") {
        Tensor a = iota({2, 3, 4});
        CHECK(a.strides() == Strides{12, 4, 1});
        Tensor p = a.permute({2, 0, 1});
        CHECK(p.shape() == Shape{4, 2, 3});
        CHECK(p.strides() == Strides{1, 12, 4});
        CHECK_FALSE(p.is_contiguous());
        Tensor n = a.narrow(2, 1, 2);
        CHECK(n.offset() == 1);
        CHECK(n.to_vector<float>() == std::vector<float>{1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22});
        Tensor e = a.select(1, 2).unsqueeze(1).expand({2, 5, 4});
        CHECK(e.strides()[1] == 0);
        CHECK(e.select(1, 4).to_vector<float>() == std::vector<float>{8, 9, 10, 11, 20, 21, 22, 23});
        // a write through a view is seen by the base, and bumps the shared version
        uint64_t v0 = a.version();
        n.fill_(-1);
        CHECK(a.to_vector<float>()[1] == -1);
        CHECK(a.version() == v0 + 1);
        CHECK(a.transpose(0, 2).contiguous().is_contiguous());
        CHECK(a.transpose(0, 2).contiguous().to_vector<float>() == a.permute({2, 1, 0}).to_vector<float>());
        CHECK(a.reshape({6, -1}).shape() == Shape{6, 4});
        CHECK(p.reshape({24}).to_vector<float>() ==
              p.contiguous().to_vector<float>());  // reshape copies here
        CHECK(a.flatten(1).shape() == Shape{2, 12});
    }

    TEST_CASE("view and reshape of non-contiguous tensors: views where the strides allow, copies elsewhere") {
        Tensor base = iota({2, 5, 9});
        Tensor rows = base.narrow(2, 0, 6);  // (2, 5, 6): rows padded to 9
        // splitting the padded last dim is a view (as self_attention splits a packed (B, T, 3W))
        Tensor split = rows.view({2, 5, 3, 2});
        CHECK(split.strides() == Strides{45, 9, 2, 1});
        CHECK(split.raw_data() == base.raw_data());
        CHECK(split.to_vector<float>() == rows.contiguous().view({2, 5, 3, 2}).to_vector<float>());
        // merging the two leading dims keeps the padded rows: a view too
        Tensor merged = rows.view({10, 6});
        CHECK(merged.strides() == Strides{9, 1});
        CHECK(merged.to_vector<float>() == rows.contiguous().view({10, 6}).to_vector<float>());
        // size-1 dims go anywhere
        CHECK(rows.view({2, 1, 5, 6, 1}).to_vector<float>() == rows.contiguous().to_vector<float>());
        // merging across the padding needs a copy: view refuses, reshape copies
        CHECK(error_of([&] { rows.view({2, 30}); }).find("cannot hold shape [2, 30]") != std::string::npos);
        Tensor copied = rows.reshape({2, 30});
        CHECK(copied.is_contiguous());
        CHECK(copied.raw_data() != base.raw_data());
        CHECK(copied.to_vector<float>() == rows.contiguous().to_vector<float>());
        // a transpose splits and merges within its own dims only
        Tensor t = iota({4, 6}).transpose(0, 1);  // (6, 4), strides (1, 6)
        CHECK(t.view({2, 3, 4}).strides() == Strides{3, 1, 6});
        CHECK(t.view({2, 3, 4}).to_vector<float>() == t.contiguous().view({2, 3, 4}).to_vector<float>());
        CHECK_FALSE(view_strides(t.shape(), t.strides(), {24}).has_value());
        // a scalar, an empty tensor and an expanded dim
        CHECK(full({}, 2.0).view({1, 1}).to_vector<float>() == std::vector<float>{2});
        CHECK(empty({0, 3}).transpose(0, 1).view({0}).numel() == 0);
        Tensor e = iota({3, 1}).expand({3, 4});  // strides (1, 0)
        CHECK(e.view({3, 2, 2}).strides() == Strides{1, 0, 0});
        CHECK_FALSE(view_strides(e.shape(), e.strides(), {12}).has_value());
        // the gradient of a strided view comes back in its input's shape
        Tensor x = iota({3, 8}).requires_grad_();
        sum(mul(x.narrow(1, 0, 6).view({3, 2, 3}), iota({3, 2, 3}))).backward();
        std::vector<float> want(24, 0);
        for (int i = 0; i < 3; ++i)
            for (int j = 0; j < 6; ++j) want[i * 8 + j] = static_cast<float>(i * 6 + j);
        CHECK(x.grad().to_vector<float>() == want);
    }

    TEST_CASE("broadcasting: size-1 dims, scalars, missing leading dims, non-contiguous operands") {
        Tensor a = iota({3, 1}), b = iota({1, 4});
        CHECK(add(a, b).to_vector<float>() == std::vector<float>{0, 1, 2, 3, 1, 2, 3, 4, 2, 3, 4, 5});
        CHECK(mul(iota({2, 3}), scalar_tensor(2)).to_vector<float>() ==
              std::vector<float>{0, 2, 4, 6, 8, 10});
        CHECK(sub(iota({2, 2, 3}), iota({3})).select(0, 1).to_vector<float>() ==
              std::vector<float>{6, 6, 6, 9, 9, 9});
        Tensor t = iota({3, 2}).transpose(0, 1);  // (2, 3) non-contiguous
        CHECK(add(t, iota({2, 1})).to_vector<float>() == std::vector<float>{0, 2, 4, 2, 4, 6});
        CHECK(add(iota({0, 3}), iota({1, 3})).shape() == Shape{0, 3});  // empty tensors broadcast too
    }

    TEST_CASE("dtype conversion and bf16 arithmetic in f32") {
        Tensor x = from_vector<float>({1.5f, -2.25f, 3.0f}, {3});
        CHECK(x.to(DType::I64).to_vector<int64_t>() == std::vector<int64_t>{1, -2, 3});
        Tensor h = x.to(DType::BF16);
        CHECK(h.dtype() == DType::BF16);
        CHECK(add(h, h).to_vector<float>() == std::vector<float>{3.0f, -4.5f, 6.0f});
        // 16.3125 computed in f32, then rounded to bf16 (8 significant bits): the tie goes to even, 16.25
        CHECK(matmul(h.reshape({1, 3}), h.reshape({3, 1})).item() == 16.25);
        CHECK(x.to(DType::U8).to(DType::F64).dtype() == DType::F64);
    }

    TEST_CASE("set_rounded: the next to() of that dtype takes the copy once; an in-place write drops it") {
        Tensor x = from_vector<float>({1.0f, 2.0f, 3.0f}, {3});
        const Tensor copy = x.to(DType::BF16);
        x.set_rounded(copy);
        CHECK(x.to(DType::F64).dtype() == DType::F64);  // another dtype: cast, the copy kept
        CHECK(x.to(DType::BF16).same(copy));            // handed over
        CHECK(!x.to(DType::BF16).same(copy));           // once
        x.set_rounded(copy);
        x.add_(from_vector<float>({1.0f, 1.0f, 1.0f}, {3}));  // new values: the copy is stale
        const Tensor after = x.to(DType::BF16);
        CHECK(!after.same(copy));
        CHECK(after.to_vector<float>() == std::vector<float>{2.0f, 3.0f, 4.0f});
        CHECK(error_of([&] {
                  x.set_rounded(from_vector<float>({1.0f}, {1}).to(DType::BF16));
              }).find("is not a copy of") != std::string::npos);
    }

    TEST_CASE("printing shows dtype, shape, device and values") {
        std::ostringstream os;
        os << iota({2, 2});
        CHECK(os.str() == "tensor(f32[2, 2] cpu, [[0, 1], [2, 3]])");
        std::ostringstream big;
        big << iota({10});
        CHECK(big.str().find("...") != std::string::npos);
    }

    TEST_CASE("errors name the op, the shapes and the dtypes") {
        CHECK(error_of([] {
                  add(iota({2, 3}), iota({4}));
              }).find("add: shapes [2, 3] and [4] do not broadcast") != std::string::npos);
        CHECK(error_of([] {
                  matmul(iota({2, 3}), iota({4, 2}));
              }).find("matmul: inner dims differ") != std::string::npos);
        CHECK(error_of([] { add(iota({2}), iota({2}).to(DType::F64)); }).find("dtypes differ") !=
              std::string::npos);
        CHECK(error_of([] { iota({2, 3}).view({4, 2}); }).find("view: shape [4, 2]") != std::string::npos);
        CHECK(error_of([] {
                  iota({2, 3}).transpose(0, 1).view({6});
              }).find("non-contiguous") != std::string::npos);
        CHECK(error_of([] { iota({2, 3}).narrow(1, 2, 2); }).find("out of range") != std::string::npos);
        CHECK(error_of([] { iota({2, 3}).squeeze(0); }).find("is not 1") != std::string::npos);
        CHECK(error_of([] { iota({2, 2}).permute({0, 0}); }).find("repeated") != std::string::npos);
        CHECK(error_of([] { exp(arange(3)); }).find("dtype i64 is not supported") != std::string::npos);
        CHECK(error_of([] {
                  index_select(iota({3}), 0, from_vector<int64_t>({3}, {1}));
              }).find("out of range") != std::string::npos);
        CHECK(error_of([] {
                  cross_entropy(iota({2, 3}), from_vector<int64_t>({0, 5}, {2}));
              }).find("target[1] = 5") != std::string::npos);
        CHECK(error_of([] {
                  layer_norm(iota({2, 3}), iota({4}), Tensor(), 1e-5);
              }).find("layer_norm") != std::string::npos);
        // every error carries the source location
        CHECK(error_of([] { iota({2}).item(); }).find("tensor.cpp:") != std::string::npos);
    }

    TEST_CASE("CUDA tensors fail with a clear error when there is no backend or no GPU") {
        if (cuda_backend_built() && cuda_device_count() > 0)
            return;  // a GPU machine: covered by the parity tests
        std::string msg = error_of([] { (void)empty({2}, DType::F32, Device::CUDA); });
        CHECK((msg.find("no CUDA backend") != std::string::npos ||
               msg.find("no CUDA device") != std::string::npos));
        CHECK(msg.find("HINT") != std::string::npos);
    }

    TEST_CASE("in-place writes refuse tensors that require grad while grad mode is on") {
        Tensor w = iota({3}).requires_grad_();
        CHECK(error_of([&] { w.add_(iota({3})); }).find("requires grad") != std::string::npos);
        NoGradGuard no_grad;
        w.add_(iota({3}));
        CHECK(w.to_vector<float>() == std::vector<float>{0, 2, 4});
    }

    TEST_CASE("HostCopy of a CPU tensor holds it, contiguous, without history") {
        Tensor x = iota({2, 3}).requires_grad_();
        HostCopy transposed(x.transpose(0, 1)), held(x);
        Tensor t = transposed.wait();
        CHECK(t.shape() == Shape{3, 2});
        CHECK(t.is_contiguous());
        CHECK_FALSE(t.requires_grad());
        CHECK(t.to_vector<float>() == std::vector<float>{0, 3, 1, 4, 2, 5});
        x.detach().fill_(7.0);  // a contiguous CPU tensor is held, not copied
        CHECK(held.wait().to_vector<float>() == std::vector<float>(6, 7.0f));
    }

    TEST_CASE("storage is aligned to 64 bytes") {
        for (int64_t n : {1, 3, 17, 1000})
            CHECK(reinterpret_cast<uintptr_t>(empty({n}).raw_data()) % 64 == 0);
    }
}
