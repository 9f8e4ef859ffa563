// parity_cases.cpp: one entry per engine op (and per pointwise formula) for the CUDA parity harness.
// Sizes: Odd (prime-ish extents), One (every extent 1 where the op allows) and Large (a size that fills
// the GPU). Inputs are drawn by the harness; each run() calls engine ops exactly as models do.
#include "tests/cuda/parity_cases.h"

#include "engine/autograd/grad_mode.h"
#include "engine/cpu/map.h"
#include "engine/ops/autocast.h"
#include "engine/ops/ops.h"
#include "engine/optim/adamw.h"

namespace aclip::test {

namespace {

using In = ParityInput;
using Ts = std::vector<Tensor>;
using S = ParitySize;

// Shape by size: odd, all-ones (same rank) and large.
std::function<std::vector<In>(S)> one_input(Shape odd, Shape large, In::Kind kind = In::Normal) {
    return [=](S s) {
        Shape shape = s == S::Odd ? odd : s == S::Large ? large : Shape(odd.size(), 1);
        return std::vector<In>{In{shape, kind}};
    };
}

ParityCase unary(const std::string& name, std::vector<std::string> kernels,
                 std::function<Tensor(const Tensor&)> f, In::Kind kind = In::Normal) {
    ParityCase c;
    c.name = name;
    c.kernels = std::move(kernels);
    c.inputs = one_input({7, 13, 5}, {1024, 1031}, kind);
    c.run = [f](const Ts& x) { return Ts{f(x[0])}; };
    return c;
}

ParityCase binary(const std::string& name, std::vector<std::string> kernels,
                  std::function<Tensor(const Tensor&, const Tensor&)> f, In::Kind kind_b = In::Normal) {
    ParityCase c;
    c.name = name;
    c.kernels = std::move(kernels);
    c.inputs = [kind_b](S s) {  // b broadcasts against a
        if (s == S::Odd) return std::vector<In>{In{{5, 7, 3}}, In{{7, 1}, kind_b}};
        if (s == S::One) return std::vector<In>{In{{1, 1, 1}}, In{{1, 1}, kind_b}};
        return std::vector<In>{In{{64, 129, 127}}, In{{129, 127}, kind_b}};
    };
    c.run = [f](const Ts& x) { return Ts{f(x[0], x[1])}; };
    return c;
}

// Two f32 master weights for the optimizer cases: one large enough for the vectorised path (its size
// a multiple of 4), one with an odd size; drawn as inputs, then made leaves of their own.
std::vector<In> two_parameters(S s) {
    Shape a = s == S::Odd ? Shape{37, 5} : s == S::One ? Shape{1} : Shape{4096, 1025};
    return {In{a}, In{{3, 11}}};
}
Tensor as_parameter(const Tensor& x) {
    return x.detach().to(DType::F32).contiguous().clone().requires_grad_();
}

// A linear layer writing into a residual stream: residual (..., N), x (..., K), weight (N, K), bias (N).
std::vector<In> residual_product(S s) {
    if (s == S::Odd) return {In{{3, 5, 11}}, In{{3, 5, 7}}, In{{11, 7}}, In{{11}}};
    if (s == S::One) return {In{{1, 1}}, In{{1, 1}}, In{{1, 1}}, In{{1}}};
    return {In{{8, 197, 768}}, In{{8, 197, 1024}}, In{{768, 1024}}, In{{768}}};
}

// The cases whose backward is index_add: it adds each row's sources in the CPU's order
// (engine/cuda/index_add.cuh), so the GPU's values must be the CPU's bits.
void require_cpu_bits_of_index_add(ParityCase& c) {
    c.f32_tol = c.bf16_tol = 0;
    c.tol_reason = "index_add adds each row's sources in the CPU's order: the same bits";
}

std::vector<ParityCase> build() {
    std::vector<ParityCase> v;
    // ---- pointwise formulas, forward and backward ----
    v.push_back(unary("neg", {"pointwise.Neg"}, [](const Tensor& x) { return neg(x); }));
    v.push_back(
        unary("exp", {"pointwise.Exp", "pointwise.ExpBackward"}, [](const Tensor& x) { return exp(x); }));
    v.push_back(unary(
        "log", {"pointwise.Log", "pointwise.LogBackward"}, [](const Tensor& x) { return log(x); },
        In::Positive));
    v.push_back(unary(
        "sqrt", {"pointwise.Sqrt", "pointwise.SqrtBackward"}, [](const Tensor& x) { return sqrt(x); },
        In::Positive));
    v.push_back(unary(
        "rsqrt", {"pointwise.Rsqrt", "pointwise.RsqrtBackward"}, [](const Tensor& x) { return rsqrt(x); },
        In::Positive));
    v.push_back(
        unary("abs", {"pointwise.Abs", "pointwise.AbsBackward"}, [](const Tensor& x) { return abs(x); }));
    v.push_back(
        unary("relu", {"pointwise.Relu", "pointwise.ReluBackward"}, [](const Tensor& x) { return relu(x); }));
    v.push_back(
        unary("gelu", {"pointwise.Gelu", "pointwise.GeluBackward"}, [](const Tensor& x) { return gelu(x); }));
    v.push_back(unary("quick_gelu", {"pointwise.QuickGelu", "pointwise.QuickGeluBackward"},
                      [](const Tensor& x) { return quick_gelu(x); }));
    v.push_back(unary("sigmoid", {"pointwise.Sigmoid", "pointwise.SigmoidBackward"},
                      [](const Tensor& x) { return sigmoid(x); }));
    v.push_back(
        unary("tanh", {"pointwise.Tanh", "pointwise.TanhBackward"}, [](const Tensor& x) { return tanh(x); }));
    v.push_back(
        unary("add_scalar", {"pointwise.AddScalar"}, [](const Tensor& x) { return add_scalar(x, 0.75); }));
    v.push_back(
        unary("mul_scalar", {"pointwise.MulScalar"}, [](const Tensor& x) { return mul_scalar(x, -1.5); }));
    v.push_back(unary(
        "pow_scalar", {"pointwise.PowScalar", "pointwise.PowBackward"},
        [](const Tensor& x) { return pow_scalar(x, 1.7); }, In::Positive));
    v.push_back(unary("clamp", {"pointwise.Clamp", "pointwise.ClampBackward"},
                      [](const Tensor& x) { return clamp(x, -0.3, 0.4); }));
    {
        ParityCase c = unary("exp_scale", {"pointwise.ExpScale"},
                             [](const Tensor& x) { return map1<PW::ExpScale>(x, 0.7); });
        c.backward = false;  // a kernel of cross_entropy's CPU backward, with no gradient of its own
        v.push_back(c);
    }
    v.push_back(
        binary("add", {"pointwise.Add", "sum"}, [](const Tensor& a, const Tensor& b) { return add(a, b); }));
    v.push_back(binary("sub", {"pointwise.Sub", "pointwise.Neg"},
                       [](const Tensor& a, const Tensor& b) { return sub(a, b); }));
    v.push_back(binary("mul", {"pointwise.Mul"}, [](const Tensor& a, const Tensor& b) { return mul(a, b); }));
    v.push_back(binary(
        "div", {"pointwise.Div", "pointwise.NegMul", "pointwise.DivBySquare"},
        [](const Tensor& a, const Tensor& b) { return div(a, b); }, In::Positive));
    v.push_back(binary("maximum", {"pointwise.Maximum", "pointwise.MaximumMask", "where", "fill"},
                       [](const Tensor& a, const Tensor& b) { return maximum(a, b); }));
    {
        ParityCase c =
            binary("compare", {"pointwise.Greater", "pointwise.Equal"}, [](const Tensor& a, const Tensor& b) {
                // Rounded copies make equal elements common.
                Tensor ar = a.to(DType::I32).to(a.dtype()), br = b.to(DType::I32).to(b.dtype());
                return concat({greater(a, b), equal(ar, br)}, 0);
            });
        c.backward = false;
        v.push_back(c);
    }
    {
        ParityCase c = binary("add_ (axpy)", {"pointwise.Axpy"}, [](const Tensor& a, const Tensor& b) {
            NoGradGuard no_grad;
            Tensor out = a.detach().clone();
            out.add_(b.detach(), -0.5).mul_(1.25);
            return out;
        });
        c.backward = false;
        v.push_back(c);
    }
    {
        ParityCase c;
        c.name = "add / sub of f32 and bf16 under autocast (the residual stream), dense and broadcast";
        c.kernels = {"pointwise.Add", "pointwise.Sub"};
        c.inputs = [](S s) {
            Shape x = s == S::Odd ? Shape{3, 5, 37} : s == S::One ? Shape{1} : Shape{50432, 768};
            return std::vector<In>{In{x}, In{x}, In{{x.back()}}};
        };
        // the second and third operands in the other dtype: f32 + bf16 for f32 runs, bf16 + f32 for bf16 ones
        c.run = [](const Ts& x) {
            AutocastGuard autocast;
            const DType other = x[0].dtype() == DType::F32 ? DType::BF16 : DType::F32;
            const Tensor y = x[1].to(other), row = x[2].to(other);
            return Ts{add(x[0], y), sub(y, x[0]), add(x[0], row)};
        };
        v.push_back(c);
    }
    {
        ParityCase c;
        c.name = "where / masked_fill";
        c.kernels = {"where"};
        c.inputs = [](S s) {
            Shape a = s == S::Odd ? Shape{9, 11} : s == S::One ? Shape{1, 1} : Shape{1000, 1031};
            return std::vector<In>{In{a, In::Mask}, In{a}, In{{a[1]}}};
        };
        c.run = [](const Ts& x) { return Ts{where(x[0], x[1], x[2]), masked_fill(x[1], x[0], -2.5)}; };
        v.push_back(c);
    }
    {
        ParityCase c;
        c.name = "copies, casts and views";
        c.kernels = {"strided_copy", "fill"};
        c.inputs = one_input({6, 10, 7}, {128, 512, 257});
        c.run = [](const Ts& x) {
            Tensor t = x[0].transpose(0, 2).contiguous();
            Tensor other = x[0].to(x[0].dtype() == DType::F32 ? DType::BF16 : DType::F32);
            Tensor back = other.to(x[0].dtype());
            Tensor ints = x[0].detach().clone().fill_(3.0).to(DType::I64);  // fill a fresh copy; cast to ints
            // 8-bit pixels to floats, as normalize_images does on the device (a constant: NaN has no u8)
            Tensor pixels = x[0].detach().clone().fill_(201.0).to(DType::U8).to(x[0].dtype());
            Tensor cat = concat({x[0], x[0]}, 1);
            // views whose backward fills a zero gradient of the whole input on its device
            const int64_t half = x[0].size(1) / 2;
            Tensor narrowed = mul_scalar(x[0].narrow(1, half, x[0].size(1) - half), 2.0);
            Tensor selected = mul_scalar(x[0].select(2, x[0].size(2) - 1), 3.0);
            // a patch embedding's permute (runs of 16: moved in packs), and off a pack's alignment (not)
            const Tensor flat = x[0].reshape({-1});
            const int64_t run = 2 * 3 * 4 * 16;
            auto patches = [&](int64_t at) {
                return flat.numel() < run + 1 ? flat.clone()
                                              : flat.narrow(0, at, run)
                                                    .reshape({2, 3, 4, 16})
                                                    .permute({0, 2, 1, 3})
                                                    .contiguous();
            };
            return Ts{t,        back,     ints,       pixels,    cat, stack({x[0], x[0]}, 0),
                      narrowed, selected, patches(0), patches(1)};
        };
        v.push_back(c);
    }
    {
        ParityCase c =
            unary("dropout", {"dropout_scale"}, [](const Tensor& x) { return dropout(x, 0.3, 1234, 7); });
        v.push_back(c);
    }
    // ---- reductions ----
    {
        ParityCase c;
        c.name = "sum / mean / var";
        c.kernels = {"sum"};
        c.inputs = one_input({6, 7, 9}, {64, 257, 1031});
        c.run = [](const Ts& x) {
            return Ts{sum(x[0]),       sum(x[0], {0}),    sum(x[0], {2}, true),
                      mean(x[0], {1}), sum(x[0], {0, 2}), var(x[0].reshape({-1, x[0].size(2)}), {0}, false)};
        };
        c.f32_tol = 2e-5;
        c.tol_reason = "sums of up to 1.7e7 f32 terms in different orders (CPU: f64 accumulators)";
        v.push_back(c);
    }
    {
        ParityCase c;
        c.name = "sum over rows (bias gradients)";
        c.kernels = {"sum"};
        // 24 and 768 columns take 16-byte packs; 100 and 50,432 rows several chunks, the first 40 rows one.
        c.inputs = one_input({100, 24}, {50432, 768});
        c.run = [](const Ts& x) {
            const Tensor head = x[0].narrow(0, 0, std::min<int64_t>(x[0].size(0), 40));
            return Ts{sum(x[0], {0}), sum(head, {0}), sum(x[0], {0}, false, DType::F32)};  // f32 out
        };
        v.push_back(c);
    }
    {
        ParityCase c;
        c.name = "max / argmax";
        c.kernels = {"max_with_index", "scatter_add"};
        c.inputs = one_input({6, 7, 9}, {256, 1024, 33});
        c.run = [](const Ts& x) { return Ts{max(x[0], 1), argmax(x[0], -1), max(x[0], 0, true)}; };
        v.push_back(c);
    }
    {
        ParityCase c;
        c.name = "clip_grad_norm";
        c.kernels = {"sum_of_squares", "pointwise.MulScalar"};
        c.inputs = two_parameters;
        c.run = [](const Ts& x) {
            Tensor p = as_parameter(x[0]), q = as_parameter(x[1]);
            add(sum(mul(p, p)), sum(mul_scalar(q, 3.0))).backward();
            double norm = clip_grad_norm({p, q}, 0.5);
            return Ts{full({}, norm).to(p.device()), p.grad(), q.grad()};
        };
        c.backward = false;
        c.nonfinite = false;
        v.push_back(c);
    }
    // ---- softmax and losses ----
    for (bool log_form : {false, true}) {
        ParityCase c = unary(
            log_form ? "log_softmax" : "softmax", {"softmax_rows", "softmax_backward_rows", "strided_copy"},
            [log_form](const Tensor& x) { return log_form ? log_softmax(x, 0) : softmax(x, -1); });
        v.push_back(c);
    }
    {
        ParityCase c;
        c.name = "cross_entropy";
        c.kernels = {"softmax_rows", "nll_sum", "cross_entropy_backward"};
        c.inputs = [](S s) {
            int64_t N = s == S::Odd   ? 13
                        : s == S::One ? 1
                                      : 4096,
                    C = s == S::Odd   ? 29
                        : s == S::One ? 1
                                      : 1000;
            return std::vector<In>{In{{N, C}}, In{{N}, In::Index, C}};
        };
        c.run = [](const Ts& x) { return Ts{cross_entropy(mul_scalar(x[0], 3.0), x[1])}; };
        v.push_back(c);
    }
    // ---- normalisation ----
    {
        ParityCase c;
        c.name = "layer_norm";
        c.kernels = {"layer_norm_forward", "layer_norm_backward"};
        c.inputs = [](S s) {
            Shape x = s == S::Odd ? Shape{3, 7, 45} : s == S::One ? Shape{1, 1, 1} : Shape{64, 197, 768};
            return std::vector<In>{In{x}, In{{x[2]}}, In{{x[2]}}};
        };
        c.run = [](const Ts& x) {
            // A residual stream: h + LN(h), whose backward adds LN's gradient into h's (pending_gradient;
            // the outer product gives the add a gradient of its own to hand on)
            const Tensor h = mul_scalar(x[0], 1.5);
            const Tensor residual = mul_scalar(add(h, mul_scalar(layer_norm(h, x[1], x[2], 1e-5), 0.5)), 1.0);
            return Ts{layer_norm(x[0], x[1], x[2], 1e-5), layer_norm(x[0], {}, {}, 1e-6), residual};
        };
        c.f32_tol = 1e-4;
        c.tol_reason =
            "the weight gradient sums up to 12,608 rows of products; the One size normalises a "
            "single element, whose value is pure rounding";
        v.push_back(c);
    }
    {
        ParityCase c;
        c.name = "layer_norm with a bf16 output (an f32 input under autocast, for a matrix product)";
        c.kernels = {"layer_norm_forward", "layer_norm_backward"};
        c.inputs = [](S s) {
            Shape x = s == S::Odd ? Shape{3, 7, 48} : s == S::One ? Shape{1, 1, 8} : Shape{64, 197, 768};
            return std::vector<In>{In{x}, In{{x[2]}}, In{{x[2]}}};
        };
        // f32 runs the mixed kernels (f32 in, bf16 out and output gradient); bf16 the plain ones
        c.run = [](const Ts& x) { return Ts{layer_norm(x[0], x[1], x[2], 1e-5, DType::BF16)}; };
        c.f32_tol = 5e-3;
        c.tol_reason =
            "the output is rounded to bf16 (2^-9 relative): an f32 value that differs in its last bits "
            "between the devices can round to the neighbouring bf16";
        v.push_back(c);
    }
    {
        ParityCase c;
        c.name = "layer_norm, rows wider than the register cache";
        c.kernels = {"layer_norm_forward", "layer_norm_backward"};
        c.inputs = [](S s) {
            Shape x = s == S::One ? Shape{1, 1025} : s == S::Odd ? Shape{5, 1100} : Shape{4096, 2048};
            return std::vector<In>{In{x}, In{{x[1]}}, In{{x[1]}}};
        };
        c.run = [](const Ts& x) { return Ts{layer_norm(x[0], x[1], x[2], 1e-5)}; };
        c.f32_tol = 1e-4;
        c.tol_reason = "the weight gradient sums up to 4,096 rows of products";
        v.push_back(c);
    }
    {
        ParityCase c;
        c.name = "batch_norm (composed)";
        c.kernels = {"sum", "pointwise.Sub", "pointwise.Rsqrt", "pointwise.Mul", "pointwise.Add"};
        c.inputs = [](S s) {
            int64_t N = s == S::Large ? 4096 : 13, C = s == S::Large ? 256 : 6;
            if (s == S::One) C = 1;
            return std::vector<In>{In{{N, C}}, In{{C}}, In{{C}}};
        };
        c.run = [](const Ts& x) {
            return Ts{batch_norm(x[0], x[1], x[2], {}, {}, true, 0.1, 1e-5), l2_normalize(x[0], -1)};
        };
        c.f32_tol = 1e-4;
        c.tol_reason = "batch statistics are sums over the batch, then differentiated through rsqrt";
        v.push_back(c);
    }
    // ---- matrix products ----
    {
        ParityCase c;
        c.name = "matmul / linear / linear_add";
        c.kernels = {"gemm"};
        c.inputs = [](S s) {
            if (s == S::Odd) return std::vector<In>{In{{3, 5, 7}}, In{{7, 11}}, In{{11, 7}}, In{{11}}};
            if (s == S::One) return std::vector<In>{In{{1, 1, 1}}, In{{1, 1}}, In{{1, 1}}, In{{1}}};
            return std::vector<In>{In{{8, 197, 768}}, In{{768, 1024}}, In{{1024, 768}}, In{{1024}}};
        };
        c.run = [](const Ts& x) {
            Tensor batched = matmul(x[0], x[1]);                                     // (B, M, K) @ (K, N)
            Tensor transposed = matmul(x[1].transpose(0, 1), x[0].transpose(1, 2));  // both stored transposed
            Tensor lin = linear(x[0], x[2], x[3]);
            Tensor added = linear_add(batched, x[0], x[2], x[3]);  // the product written into batched
            return Ts{batched, transposed, lin, added};
        };
        c.f32_tol = 1e-4;
        c.tol_reason =
            "f32 products with K up to 1024 accumulated in different orders (OpenBLAS vs cuBLASLt)";
        v.push_back(c);
    }
    {
        ParityCase c;
        c.name = "linear and linear_add under autocast (f32 masters, bf16 products, f32 weight gradients)";
        c.kernels = {"gemm"};
        c.inputs = residual_product;
        // The trainer's case: the stream, weight and bias f32, the products bf16; the weight and bias
        // gradients come from the weight-gradient product in f32 (bf16 into f32, its bias-gradient epilogue).
        c.run = [](const Ts& x) {
            AutocastGuard autocast;
            const Tensor w = x[2].to(DType::F32), b = x[3].to(DType::F32);
            return Ts{linear(x[1], w, b), linear_add(x[0].to(DType::F32), x[1], w, b)};
        };
        c.f32_tol = 8e-3;
        c.tol_reason =
            "bf16-rounded values (linear's output, the input gradient) of f32 sums in other orders: a sum "
            "near a rounding boundary moves one bf16 ulp, at most 2^-7 of its value, so at most 2^-7 "
            "norm-relative (run 6: 2.6e-3 at the odd size, 3 x 5 x 7 values)";
        v.push_back(c);
    }
    // ---- indexing ----
    {
        ParityCase c;
        c.name = "embedding / index_select";
        c.kernels = {"index_select", "index_add"};
        c.inputs = [](S s) {
            if (s == S::Odd) return std::vector<In>{In{{23, 9}}, In{{4, 7}, In::Index, 23}};
            if (s == S::One) return std::vector<In>{In{{1, 1}}, In{{1, 1}, In::Index, 1}};
            return std::vector<In>{In{{49408, 512}}, In{{256, 77}, In::Index, 49408}};
        };
        c.run = [](const Ts& x) {
            // Columns: the first, the last and the first again (a repeated index).
            Tensor cols = from_vector(std::vector<int64_t>{0, x[0].size(1) - 1, 0}, {3}).to(x[0].device());
            return Ts{embedding(x[0], x[1]), index_select(x[0], 1, cols)};
        };
        require_cpu_bits_of_index_add(c);
        v.push_back(c);
    }
    {
        ParityCase c;
        c.name = "gather_rows (index_select of each sample's rows)";
        c.kernels = {"index_select", "index_add"};
        c.inputs = [](S s) {
            if (s == S::Odd) return std::vector<In>{In{{3, 11, 5}}, In{{3, 7}, In::Index, 11}};
            if (s == S::One) return std::vector<In>{In{{1, 1, 1}}, In{{1, 1}, In::Index, 1}};
            return std::vector<In>{In{{256, 197, 768}}, In{{256, 50}, In::Index, 197}};  // kept patches
        };
        c.run = [](const Ts& x) { return Ts{gather_rows(x[0], x[1])}; };
        require_cpu_bits_of_index_add(c);
        v.push_back(c);
    }
    {
        ParityCase c;
        c.name = "gather / scatter_add";
        c.kernels = {"gather", "scatter_add"};
        c.inputs = [](S s) {
            if (s == S::Odd) return std::vector<In>{In{{5, 9}}, In{{5, 4}, In::Index, 9}, In{{5, 4}}};
            if (s == S::One) return std::vector<In>{In{{1, 1}}, In{{1, 1}, In::Index, 1}, In{{1, 1}}};
            return std::vector<In>{In{{512, 197}}, In{{512, 150}, In::Index, 197}, In{{512, 150}}};
        };
        c.run = [](const Ts& x) { return Ts{gather(x[0], 1, x[1]), scatter_add(x[0], 1, x[1], x[2])}; };
        c.bf16_tol = 3e-2;
        c.tol_reason = "bf16 atomics round after every addition when an index repeats";
        v.push_back(c);
    }
    {
        ParityCase c;
        c.name = "topk / argsort";
        c.kernels = {"sort_rows", "gather"};
        c.inputs = one_input({6, 31}, {4096, 196});
        c.run = [](const Ts& x) {
            auto [values, index] = topk(x[0], x[0].size(-1) / 2 + 1);
            return Ts{values, index, argsort(x[0]), argsort(x[0], true)};
        };
        c.backward = false;
        c.nonfinite = false;  // NaN has no place in an order; the CPU's std::sort leaves it unspecified
        v.push_back(c);
    }
    // ---- 2-D maps ----
    {
        ParityCase c;
        c.name = "resize_bilinear / avg_pool2d";
        c.kernels = {"resize_bilinear", "avg_pool2d", "strided_copy"};
        c.inputs = one_input({2, 3, 12, 8}, {64, 3, 224, 224});
        c.run = [](const Ts& x) {
            return Ts{resize_bilinear(x[0], 7, 13), resize_bilinear(x[0], 30, 5),
                      avg_pool2d(x[0], x[0].size(2) % 2 ? 1 : 2)};
        };
        v.push_back(c);
    }
    // ---- attention ----
    for (int64_t D : {32, 64})
        for (bool causal : {false, true}) {
            ParityCase c;
            c.name = str_cat("flash attention D=", D, causal ? " causal" : "");
            // f32 runs attention.cu's kernels, bf16 the tensor-core ones; the CPU runs the composed op.
            c.kernels = {"flash_attention_forward", "flash_attention_backward", "flash_attention_forward_mma",
                         "flash_attention_backward_mma"};
            c.inputs = [D](S s) {
                Shape q = s == S::Odd   ? Shape{2, 3, 37, D}
                          : s == S::One ? Shape{1, 1, 1, D}
                                        : Shape{16, 12, 197, D};
                Shape k = q;
                if (s == S::Odd) k[2] = 41;  // Tk != Tq
                return std::vector<In>{In{q}, In{k}, In{k}};
            };
            c.run = [causal](const Ts& x) { return Ts{fused_attention(x[0], x[1], x[2], causal)}; };
            c.f32_tol = 2e-5;
            c.tol_reason =
                "online softmax rescales running sums in a different order from the composed CPU op";
            v.push_back(c);
        }
    for (bool causal : {false, true}) {
        ParityCase c;
        c.name = str_cat("self_attention (packed q, k, v)", causal ? " causal" : "");
        // bf16 reads q, k, v in place and writes the packed gradient (the tensor-core kernels); f32, and
        // the strided variant (rows of 3W + 3 elements), run the composed op on views.
        c.kernels = {"flash_attention_forward_mma",
                     "flash_attention_backward_mma",
                     "gemm",
                     "softmax_rows",
                     "softmax_backward_rows",
                     "strided_copy"};
        c.inputs = [](S s) {
            Shape x = s == S::Odd   ? Shape{2, 37, 3 * 64}
                      : s == S::One ? Shape{1, 1, 3 * 32}
                                    : Shape{16, 197, 3 * 768};
            return std::vector<In>{In{x}};
        };
        c.run = [causal](const Ts& x) {
            const int64_t W = x[0].size(2) / 3;
            return Ts{self_attention(x[0], W == 768 ? 12 : W / 32, causal)};  // head dims 64, 32, 32
        };
        c.f32_tol = 2e-5;
        c.tol_reason = "softmax rows summed in a different order by cuBLASLt and the CPU";
        v.push_back(c);
    }
    {
        ParityCase c;
        c.name = "composed attention (with its probabilities, causal and not) and CLS row";
        c.kernels = {"attention_cls_probs", "softmax_rows", "gemm"};
        c.inputs = [](S s) {
            Shape q = s == S::Odd   ? Shape{2, 3, 17, 24}
                      : s == S::One ? Shape{1, 1, 1, 1}
                                    : Shape{64, 12, 197, 64};
            return std::vector<In>{In{q}, In{q}, In{q}};
        };
        c.run = [](const Ts& x) {
            AttentionResult r = scaled_dot_product_attention(x[0], x[1], x[2], false, true);
            AttentionResult causal = scaled_dot_product_attention(x[0], x[1], x[2], true, true);
            return Ts{r.out, r.probs, causal.out, attention_cls_probs(x[0], x[1])};
        };
        v.push_back(c);
    }
    // ---- optimizer ----
    {
        ParityCase c;
        c.name = "AdamW and EMA";
        c.kernels = {"adamw_step", "ema_update"};
        c.inputs = two_parameters;
        c.run = [](const Ts& x) {
            Tensor p = as_parameter(x[0]), q = as_parameter(x[1]);
            Tensor ema_p = p.detach().clone(), ema_q = q.detach().clone();
            AdamW opt({ParamGroup{{p}, 0.1}, ParamGroup{{q}, 0.0}});
            for (int step = 0; step < 3; ++step) {
                opt.zero_grad();
                add(sum(mul(mul(p, p), p)), sum(mul_scalar(q, 3.0))).backward();
                opt.step(1e-2);
                ema_update({ema_p, ema_q}, {p.detach(), q.detach()}, 0.9);
            }
            return Ts{p.detach(), q.detach(), ema_p, ema_q};
        };
        c.backward = false;
        c.nonfinite = false;
        c.f32_tol = 1e-5;
        v.push_back(c);
    }
    return v;
}

}  // namespace

const std::vector<ParityCase>& parity_cases() {
    static const std::vector<ParityCase> cases = build();
    return cases;
}

}  // namespace aclip::test
