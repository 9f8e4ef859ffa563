// matmul.cpp: matrix products. matmul broadcasts batch dims and multiplies the last two; linear is the
// layer op x Wᵀ + b with its backward done directly as GEMMs, and linear_add adds it to a residual stream
// as the product is written. bf16 inputs are multiplied in f32.
#include <optional>

#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/cpu/gemm.h"
#include "engine/cpu/strided_loop.h"
#include "engine/cuda/cuda_ops.h"
#include "engine/ops/autocast.h"
#include "engine/ops/ops.h"

namespace aclip {

namespace {

// How a (rows, cols) matrix view is handed to GEMM without copying: row-major with leading dim ld, or
// transposed (column-major storage). Views with neither layout are copied first by the caller.
struct MatLayout {
    bool trans = false;
    int64_t ld = 0;
};

bool gemm_layout(const Tensor& t, MatLayout& out) {
    int64_t n = t.dim(), rows = t.shape()[n - 2], cols = t.shape()[n - 1];
    int64_t rs = t.strides()[n - 2], cs = t.strides()[n - 1];
    if (cs == 1 || cols == 1) {
        out = {false, std::max<int64_t>(rows == 1 ? cols : rs, std::max<int64_t>(cols, 1))};
        return rows == 1 || rs >= cols;
    }
    if (rs == 1 || rows == 1) {
        out = {true, std::max<int64_t>(cols == 1 ? rows : cs, std::max<int64_t>(rows, 1))};
        return cols == 1 || cs >= rows;
    }
    return false;
}

constexpr int64_t kSmallGemm = int64_t(1) << 18;

// out = a @ b (beta = 0), or out += a @ b (beta = 1: out holds the extras already).
template <class T>
void batched_matmul(const Tensor& a, const Tensor& b, Tensor& out, const Shape& batch, T beta) {
    int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
    MatLayout la, lb;
    bool ok_a = gemm_layout(a, la), ok_b = gemm_layout(b, lb);
    Tensor ac = ok_a ? a : a.contiguous(), bc = ok_b ? b : b.contiguous();
    if (!ok_a) gemm_layout(ac, la);
    if (!ok_b) gemm_layout(bc, lb);
    Shape a_batch(ac.shape().begin(), ac.shape().end() - 2),
        b_batch(bc.shape().begin(), bc.shape().end() - 2);
    Strides a_bs = broadcast_strides(a_batch, Strides(ac.strides().begin(), ac.strides().end() - 2), batch);
    Strides b_bs = broadcast_strides(b_batch, Strides(bc.strides().begin(), bc.strides().end() - 2), batch);
    const T* pa = ac.data<T>();
    const T* pb = bc.data<T>();
    T* po = out.data<T>();
    const int64_t nb = shape_numel(batch);
    auto product = [&](int64_t i) {
        int64_t oa = 0, ob = 0, rem = i;
        for (int64_t d = static_cast<int64_t>(batch.size()) - 1; d >= 0; --d) {
            int64_t idx = rem % batch[d];
            rem /= batch[d];
            oa += idx * a_bs[d];
            ob += idx * b_bs[d];
        }
        cpu_gemm<T>(la.trans, lb.trans, M, N, K, T(1), pa + oa, la.ld, pb + ob, lb.ld, beta, po + i * M * N,
                    N);
    };
    // Small products (attention's, per head) run on one thread inside OpenBLAS anyway (below about 2^18
    // multiply-adds): spread the batch over the threads instead, each product computed exactly as before.
    if (M * N * K <= kSmallGemm)
        parallel_for(nb, M * N * K, product);
    else
        for (int64_t i = 0; i < nb; ++i) product(i);
}

// The one stride between consecutive matrices of the flattened batch, when the batch dims of an operand
// (broadcast to `batch`) collapse to one; 0 when the operand is one matrix broadcast to all.
bool single_batch_stride(const Shape& batch, const Strides& strides, int64_t& stride) {
    int64_t next = -1;  // the innermost non-trivial dim seen so far
    stride = 0;
    for (int64_t d = static_cast<int64_t>(batch.size()) - 1; d >= 0; --d) {
        if (batch[d] == 1) continue;
        if (next < 0)
            stride = strides[d];
        else if (strides[d] != strides[next] * batch[next])
            return false;
        next = d;
    }
    return true;
}

// What a product writes besides a @ b (matmul_forward).
struct ProductExtras {
    Tensor bias = {};            // (N): added to every row (one matrix); the epilogue adds it on the GPU
    Tensor* row_sums = nullptr;  // if given (one matrix), may receive the sums of a's rows (M) in the
                                 // output's dtype, from the GPU's epilogue; stays undefined where it cannot
    Tensor accumulate = {};      // (M, N), no batch: out = accumulate + a @ b (+ bias), in its dtype
    // f32 from bf16 inputs (unrounded); by default a's dtype (accumulate's when given)
    std::optional<DType> out_dtype = {};
};

// The GPU path: one cuBLASLt call for the whole batch. Operands whose layout cuBLASLt cannot take
// (batch dims that do not collapse, or rows and columns both strided) are copied first. The bias rides
// on the epilogue where cuBLASLt can, else is added afterwards; accumulate is cuBLASLt's C.
Tensor cuda_matmul(const Tensor& a, const Tensor& b, const Shape& batch, const Shape& out_shape,
                   DType out_dtype, const ProductExtras& e) {
    Tensor out = empty(out_shape, out_dtype, Device::CUDA);
    auto prepare = [&](const Tensor& t, Tensor& keep, cuda::GemmOperand& op) {
        Shape rc = batch;
        rc.push_back(t.size(-2));
        rc.push_back(t.size(-1));
        Shape tb(t.shape().begin(), t.shape().end() - 2);
        Strides bs = broadcast_strides(tb, Strides(t.strides().begin(), t.strides().end() - 2), batch);
        MatLayout l;
        int64_t stride = 0;
        keep = t;
        if (!gemm_layout(t, l) || !single_batch_stride(batch, bs, stride)) {
            keep = t.expand(rc).contiguous();
            gemm_layout(keep, l);
            stride = shape_numel(batch) > 1 ? t.size(-2) * t.size(-1) : 0;
        }
        op = {&keep, l.trans, l.ld, stride};
    };
    Tensor ka, kb;
    cuda::GemmOperand oa{}, ob{};
    prepare(a, ka, oa);
    prepare(b, kb, ob);
    const int64_t nb = shape_numel(batch), M = a.size(-2), N = b.size(-1), K = a.size(-1);
    const Tensor accumulate = e.accumulate.defined() ? e.accumulate.detach().contiguous() : Tensor();
    if (e.row_sums && nb == 1) {
        Tensor sums = empty({M}, out_dtype, Device::CUDA);
        if (cuda::gemm(oa, ob, out, nb, M, N, K, sums, cuda::GemmEpilogue::BiasGradient, accumulate))
            *e.row_sums = sums;
        return out;
    }
    const Tensor& bias = e.bias;
    const bool epilogue = bias.defined() && nb == 1 && bias.dtype() == out.dtype();
    const bool added = cuda::gemm(oa, ob, out, nb, M, N, K, epilogue ? bias.detach().contiguous() : Tensor(),
                                  cuda::GemmEpilogue::Bias, accumulate);
    if (bias.defined() && !added) out.add_(bias.detach());
    return out;
}

// a @ b with the extras; bf16 inputs are multiplied in f32 (and the result rounded to bf16 unless the
// output is f32).
Tensor matmul_forward(const Tensor& a, const Tensor& b, const ProductExtras& e = {}) {
    const Device device = common_device("matmul", {&a, &b});
    AC_CHECK(a.dim() >= 2 && b.dim() >= 2, "matmul: needs at least 2 dims, got ", a.desc(), " @ ", b.desc());
    AC_CHECK(a.dtype() == b.dtype(), "matmul: dtypes differ: ", a.desc(), " @ ", b.desc());
    AC_CHECK(a.size(-1) == b.size(-2), "matmul: inner dims differ: ", a.desc(), " @ ", b.desc());
    Shape batch = broadcast_shapes(Shape(a.shape().begin(), a.shape().end() - 2),
                                   Shape(b.shape().begin(), b.shape().end() - 2), "matmul");
    Shape out_shape = batch;
    out_shape.push_back(a.size(-2));
    out_shape.push_back(b.size(-1));
    NoGradGuard no_grad;
    const DType out_dtype = e.accumulate.defined() ? e.accumulate.dtype() : e.out_dtype.value_or(a.dtype());
    AC_CHECK(out_dtype == a.dtype() || (out_dtype == DType::F32 && a.dtype() == DType::BF16),
             "matmul: a product of ", a.desc(), " writes its dtype or, from bf16, f32; asked for ",
             dtype_name(out_dtype));
    if (e.accumulate.defined())
        AC_CHECK(batch.empty() && e.accumulate.shape() == out_shape && e.accumulate.device() == device,
                 "matmul: the accumulated tensor must be the (", a.size(-2), ", ", b.size(-1), ") output on ",
                 device_name(device), ", got ", e.accumulate.desc());
    if (device == Device::CUDA) return cuda_matmul(a.detach(), b.detach(), batch, out_shape, out_dtype, e);
    if (e.accumulate.defined())  // the stream added to the finished branch, as PyTorch's `x + proj(h)` is
        return add(e.accumulate.detach(), matmul_forward(a, b, {.bias = e.bias, .out_dtype = out_dtype}));
    if (a.dtype() == DType::BF16 && out_dtype == DType::F32)  // the bias meets the unrounded f32 product
        return matmul_forward(a.to(DType::F32), b.to(DType::F32), {.bias = e.bias});
    if (a.dtype() == DType::BF16) {  // in f32, rounded to bf16, then the bias in bf16
        Tensor out = matmul_forward(a.to(DType::F32), b.to(DType::F32)).to(out_dtype);
        if (e.bias.defined()) out.add_(e.bias.detach().to(out_dtype));
        return out;
    }
    // The bias is written first and the product added onto it (beta = 1), as PyTorch's addmm does: OpenBLAS
    // then skips its pass that zeroes the output, and no pass adds the bias afterwards.
    Tensor out = empty(out_shape, out_dtype);
    if (e.bias.defined()) out.copy_(e.bias.detach());  // to every row, in out's dtype
    dispatch_float(out_dtype, "matmul", [&](auto tag) {
        using T = typename decltype(tag)::type;
        if constexpr (!std::is_same_v<T, bf16>)
            batched_matmul<T>(a, b, out, batch, T(e.bias.defined() ? 1 : 0));
    });
    return out;
}

}  // namespace

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
    const Tensor a = autocast_to_low(a_in), b = autocast_to_low(b_in);
    Tensor out = matmul_forward(a, b);
    if (!needs_grad({a, b})) return out;
    SavedTensor sa(a, "matmul"), sb(b, "matmul");
    bool ra = a.requires_grad(), rb = b.requires_grad();
    return record("matmul", out, {a, b}, [=](const Tensor& g) {
        const Tensor &x = sa.get(), &y = sb.get();
        Tensor gx = ra ? sum_to_shape(matmul_forward(g, y.transpose(-1, -2)), x.shape()) : Tensor();
        Tensor gy = rb ? sum_to_shape(matmul_forward(x.transpose(-1, -2), g), y.shape()) : Tensor();
        return std::vector<Tensor>{gx, gy};
    });
}

namespace {

// Checks x (..., in), weight (out, in) and bias (out) of op; returns the output's shape (..., out).
Shape linear_shape(const char* op, const Tensor& x, const Tensor& weight, const Tensor& bias) {
    AC_CHECK(weight.dim() == 2, op, ": weight must be (out, in), got ", weight.desc());
    AC_CHECK(x.dim() >= 1 && x.size(-1) == weight.size(1), op, ": input ", x.desc(),
             " does not match weight ", weight.desc(), " (last dim must equal in_features)");
    AC_CHECK(!bias.defined() || (bias.dim() == 1 && bias.size(0) == weight.size(0)), op, ": bias ",
             bias.desc(), " does not match weight ", weight.desc());
    Shape out_shape = x.shape();
    out_shape.back() = weight.size(0);
    return out_shape;
}

// A parameter of a linear layer as its product takes it. Under autocast an f32 master (weight or bias) meets
// a bf16 input: it is multiplied as a bf16 copy, not recorded (the one the optimizer left beside it, or a
// cast made here), and the layer's backward returns its gradient in f32 straight from the weight-gradient
// product (cuBLASLt writes f32 from bf16 inputs): no cast runs in backward, and the gradient is not rounded
// to bf16 on the way, as PyTorch's autocast rounds it. Otherwise the parameter itself.
Tensor product_copy(const Tensor& p, const Tensor& x) {
    if (!p.defined() || !autocast_enabled() || p.dtype() != DType::F32 || x.dtype() != DType::BF16) return p;
    NoGradGuard no_grad;
    return p.to(DType::BF16);
}

// The gradients of x Wᵀ + b from the output's gradient g2 (N, out) in x's dtype, each where asked: x's (in
// x's shape, from w, the weight as the product took it), W's ((out, N) @ (N, in), in w_dtype: the master
// weight's) and b's (in b_dtype), which on the GPU may come from W's product.
std::vector<Tensor> linear_gradients(const Tensor& g2, const Tensor& x, const Tensor& w, bool rx, bool rw,
                                     bool rb, DType w_dtype, DType b_dtype) {
    Tensor gx = rx ? matmul_forward(g2, w).reshape(x.shape()) : Tensor();
    Tensor gw, gb;
    if (rw) {
        const bool sums_in_product = rb && b_dtype == w_dtype;  // the epilogue writes them in gw's dtype
        gw = matmul_forward(g2.transpose(0, 1), x.reshape({-1, x.size(-1)}),
                            {.row_sums = sums_in_product ? &gb : nullptr, .out_dtype = w_dtype});
    }
    if (rb && !gb.defined()) gb = sum(g2, {0}, false, b_dtype);  // f32 sums of bf16 terms, unrounded
    return {gx, gw, gb};
}

}  // namespace

Tensor linear(const Tensor& x_in, const Tensor& weight, const Tensor& bias) {
    const Tensor x = autocast_to_low(x_in);
    common_device("linear", {&x, &weight, &bias});
    const Shape out_shape = linear_shape("linear", x, weight, bias);
    const Tensor w = product_copy(weight, x);  // (out, in) in x's dtype
    Tensor y;
    {
        NoGradGuard no_grad;
        Tensor x2 = x.reshape({-1, x.size(-1)});  // (N, in)
        y = matmul_forward(x2, w.transpose(0, 1), {.bias = product_copy(bias, x)})
                .reshape(out_shape);  // (N, out)
    }
    if (!needs_grad({x, weight, bias})) return y;
    SavedTensor sx(x, "linear"), sw(w, "linear");
    const bool rx = x.requires_grad(), rw = weight.requires_grad(),
               rb = bias.defined() && bias.requires_grad();
    const DType w_dtype = weight.dtype(), b_dtype = bias.defined() ? bias.dtype() : w_dtype;
    return record("linear", y, {x, weight, bias}, [=](const Tensor& g) {
        return linear_gradients(g.reshape({-1, g.size(-1)}), sx.get(), sw.get(), rx, rw, rb, w_dtype,
                                b_dtype);
    });
}

Tensor linear_add(const Tensor& residual, const Tensor& x_in, const Tensor& weight, const Tensor& bias_in) {
    const Tensor x = autocast_to_low(x_in);
    common_device("linear_add", {&residual, &x, &weight, &bias_in});
    const Shape out_shape = linear_shape("linear_add", x, weight, bias_in);
    AC_CHECK(residual.shape() == out_shape, "linear_add: residual ", residual.desc(),
             " must have the output's shape ", shape_str(out_shape));
    AC_CHECK(
        is_floating(residual.dtype()) && (residual.dtype() == x.dtype() || residual.dtype() == DType::F32),
        "linear_add: residual ", residual.desc(), " must have the input's dtype or f32 (input ", x.desc(),
        ")");
    const Tensor w = product_copy(weight, x);  // (out, in) in x's dtype
    // The bias is added at the output's precision (an f32 master bias is used as it is under autocast).
    const Tensor bias =
        bias_in.defined() && bias_in.dtype() != residual.dtype() ? bias_in.to(residual.dtype()) : bias_in;
    Tensor y;
    {
        NoGradGuard no_grad;
        Tensor x2 = x.reshape({-1, x.size(-1)});  // (N, in)
        y = matmul_forward(x2, w.transpose(0, 1),
                           {.bias = bias, .accumulate = residual.reshape({-1, out_shape.back()})})
                .reshape(out_shape);  // (N, out)
    }
    if (!needs_grad({residual, x, weight, bias})) return y;
    SavedTensor sx(x, "linear_add"), sw(w, "linear_add");
    const bool rr = residual.requires_grad(), rx = x.requires_grad(), rw = weight.requires_grad(),
               rb = bias.defined() && bias.requires_grad();
    const DType w_dtype = weight.dtype(), b_dtype = bias.defined() ? bias.dtype() : w_dtype;
    return record("linear_add", y, {residual, x, weight, bias}, [=](const Tensor& g) {
        const Tensor& xs = sx.get();
        // The stream's gradient passes as it is; the branch's products take it in their inputs' dtype.
        std::vector<Tensor> grads = linear_gradients(g.to(xs.dtype()).reshape({-1, g.size(-1)}), xs, sw.get(),
                                                     rx, rw, rb, w_dtype, b_dtype);
        return std::vector<Tensor>{rr ? g : Tensor(), grads[0], grads[1], grads[2]};
    });
}

}  // namespace aclip
