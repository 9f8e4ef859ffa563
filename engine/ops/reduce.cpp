// reduce.cpp: reductions over dims (sum, mean, var, max, argmax) and sum_to_shape, which undoes
// broadcasting in backward rules.
// Every reduction sees its input as (O, R, I): O outer positions, R reduced elements, I inner positions.
// When the reduced dims are consecutive in a contiguous tensor that view is free; otherwise the reduced
// dims are permuted to the end and copied, giving (O, R, 1).
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/cpu/lane_sum.h"
#include "engine/cpu/strided_loop.h"
#include "engine/cuda/cuda_ops.h"
#include "engine/ops/ops.h"

namespace aclip {

namespace {

struct ReduceView {
    Tensor x;  // contiguous, (O, R, I) in memory
    int64_t O, R, I;
    Shape kept;     // output shape with keepdim (reduced dims set to 1)
    Shape dropped;  // output shape without the reduced dims
};

ReduceView reduce_view(const Tensor& a, std::vector<int64_t> dims, const char* op) {
    const int64_t nd = a.dim();
    if (dims.empty())
        for (int64_t d = 0; d < nd; ++d) dims.push_back(d);
    std::vector<bool> reduced(nd, false);
    for (int64_t& d : dims) {
        d = wrap_dim(d, nd, op);
        AC_CHECK(!reduced[d], op, ": dim ", d, " listed twice");
        reduced[d] = true;
    }
    std::sort(dims.begin(), dims.end());
    ReduceView v;
    v.kept = a.shape();
    for (int64_t d = 0; d < nd; ++d) {
        if (reduced[d])
            v.kept[d] = 1;
        else
            v.dropped.push_back(a.shape()[d]);
    }
    bool consecutive = dims.empty() || dims.back() - dims.front() + 1 == static_cast<int64_t>(dims.size());
    if (a.is_contiguous() && consecutive) {
        int64_t first = dims.empty() ? nd : dims.front(), last = dims.empty() ? nd - 1 : dims.back();
        v.O = v.R = v.I = 1;
        for (int64_t d = 0; d < first; ++d) v.O *= a.shape()[d];
        for (int64_t d = first; d <= last; ++d) v.R *= a.shape()[d];
        for (int64_t d = last + 1; d < nd; ++d) v.I *= a.shape()[d];
        v.x = a;
    } else {
        std::vector<int64_t> order;
        for (int64_t d = 0; d < nd; ++d)
            if (!reduced[d]) order.push_back(d);
        order.insert(order.end(), dims.begin(), dims.end());
        NoGradGuard no_grad;  // a layout change inside the kernel, not part of the graph
        v.x = a.permute(order).contiguous();
        v.O = shape_numel(v.dropped);
        v.R = a.numel() / std::max<int64_t>(v.O, 1);
        v.I = 1;
    }
    return v;
}

}  // namespace

Tensor sum(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim, std::optional<DType> dtype) {
    const DType out_dtype = dtype.value_or(a.dtype());
    AC_CHECK(out_dtype == a.dtype() || (out_dtype == DType::F32 && a.dtype() == DType::BF16), "sum: of ",
             a.desc(), " in ", dtype_name(out_dtype),
             ": the output takes the input's dtype, or f32 from bf16");
    ReduceView v = reduce_view(a, dims, "sum");
    Tensor out = empty(keepdim ? v.kept : v.dropped, out_dtype, a.device());
    const Shape in_shape = a.shape(), kept = v.kept;
    const DType in_dtype = a.dtype();
    auto backward = [in_shape, kept, in_dtype](const Tensor& g) {
        return std::vector<Tensor>{g.to(in_dtype).reshape(kept).expand(in_shape)};
    };
    if (a.device() == Device::CUDA) {
        cuda::sum(v.x, v.O, v.R, v.I, out);
        return record("sum", out, {a}, backward);
    }
    // Work is split over (O, R-block) pairs: over O when there are enough outputs, otherwise R is cut
    // into blocks whose partial sums are added at the end (a sum of everything still uses all threads).
    const int64_t blocks = v.O >= 16 ? 1 : std::clamp<int64_t>(v.R * v.I / kParallelGrain, 1, 32);
    std::vector<double> partial(v.O * blocks * v.I, 0.0);  // double accumulation: exact enough for any R
    dispatch_float(a.dtype(), "sum", [&](auto tag) {
        using T = typename decltype(tag)::type;
        const T* x = v.x.template data<T>();
        parallel_for(v.O * blocks, v.R * v.I / blocks, [&](int64_t job) {
            int64_t oi = job / blocks, blk = job % blocks;
            double* acc = partial.data() + job * v.I;
            const int64_t r0 = blk * v.R / blocks, r1 = (blk + 1) * v.R / blocks;
            if (v.I == 1) {  // a contiguous span
                const T* span = x + oi * v.R + r0;
                acc[0] =
                    lane_sum<double>(r1 - r0, [&](int64_t r) { return static_cast<double>(load(span[r])); });
                return;
            }
            for (int64_t r = r0; r < r1; ++r) {
                const T* row = x + (oi * v.R + r) * v.I;
                for (int64_t i = 0; i < v.I; ++i) acc[i] += load(row[i]);
            }
        });
        auto write = [&](auto* o) {  // into the output's dtype: T, or f32 from bf16
            using O = std::remove_pointer_t<decltype(o)>;
            for (int64_t oi = 0; oi < v.O; ++oi)
                for (int64_t i = 0; i < v.I; ++i) {
                    double s = 0;
                    for (int64_t blk = 0; blk < blocks; ++blk) s += partial[(oi * blocks + blk) * v.I + i];
                    o[oi * v.I + i] = store_as<O>(s);
                }
        };
        if (out_dtype == a.dtype())
            write(out.template data<T>());
        else
            write(out.template data<float>());
    });
    return record("sum", out, {a}, backward);
}

Tensor mean(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
    Tensor s = sum(a, dims, keepdim);
    int64_t count = s.numel() ? a.numel() / s.numel() : 0;
    return mul_scalar(s, 1.0 / static_cast<double>(std::max<int64_t>(count, 1)));
}

Tensor var(const Tensor& a, const std::vector<int64_t>& dims, bool unbiased, bool keepdim) {
    Tensor m = mean(a, dims, true);
    Tensor d = sub(a, m);
    Tensor ss = sum(mul(d, d), dims, keepdim);
    int64_t count = a.numel() / std::max<int64_t>(m.numel(), 1);
    AC_CHECK(!unbiased || count > 1, "var: unbiased variance of ", count, " element(s) over dims of ",
             a.desc());
    return mul_scalar(ss, 1.0 / static_cast<double>(count - (unbiased ? 1 : 0)));
}

namespace {

// Values and first indices of the maximum along one dim; NaN wins, as in PyTorch.
std::pair<Tensor, Tensor> max_with_index(const Tensor& a, int64_t dim, bool keepdim, const char* op) {
    dim = wrap_dim(dim, a.dim(), op);
    AC_CHECK(a.shape()[dim] > 0, op, ": empty dim ", dim, " of ", a.desc());
    ReduceView v = reduce_view(a, {dim}, op);
    Shape out_shape = keepdim ? v.kept : v.dropped;
    Tensor values = empty(out_shape, a.dtype(), a.device());
    Tensor index = empty(out_shape, DType::I64, a.device());
    if (a.device() == Device::CUDA) {
        cuda::max_with_index(v.x, v.O, v.R, v.I, values, index);
        return {values, index};
    }
    dispatch_float(a.dtype(), op, [&](auto tag) {
        using T = typename decltype(tag)::type;
        const T* x = v.x.template data<T>();
        T* ov = values.template data<T>();
        int64_t* oi = index.data<int64_t>();
        parallel_for(v.O * v.I, v.R, [&](int64_t p) {
            int64_t o = p / v.I, i = p % v.I;
            auto best = load(x[o * v.R * v.I + i]);
            int64_t best_r = 0;
            for (int64_t r = 1; r < v.R; ++r) {
                auto val = load(x[(o * v.R + r) * v.I + i]);
                if (best != best) break;  // NaN already found
                if (val > best || val != val) {
                    best = val;
                    best_r = r;
                }
            }
            ov[p] = store_as<T>(best);
            oi[p] = best_r;
        });
    });
    return {values, index};
}

}  // namespace

Tensor max(const Tensor& a, int64_t dim, bool keepdim) {
    auto [values, index] = max_with_index(a, dim, keepdim, "max");
    int64_t d = wrap_dim(dim, a.dim(), "max");
    Shape in_shape = a.shape();
    return record("max", values, {a}, [in_shape, index, d, keepdim](const Tensor& g) {
        Tensor gk = keepdim ? g : g.unsqueeze(d);
        Tensor ik = keepdim ? index : index.unsqueeze(d);
        return std::vector<Tensor>{scatter_add(zeros(in_shape, g.dtype(), g.device()), d, ik, gk)};
    });
}

Tensor argmax(const Tensor& a, int64_t dim, bool keepdim) {
    return max_with_index(a, dim, keepdim, "argmax").second;
}

Tensor sum_to_shape(const Tensor& a, const Shape& shape) {
    if (a.shape() == shape) return a;
    AC_CHECK(broadcast_shapes(shape, a.shape(), "sum_to_shape") == a.shape(), "sum_to_shape: ", a.desc(),
             " is not a broadcast of ", shape_str(shape));
    std::vector<int64_t> dims;
    size_t lead = a.shape().size() - shape.size();
    for (size_t i = 0; i < a.shape().size(); ++i)
        if (i < lead || (shape[i - lead] == 1 && a.shape()[i] != 1)) dims.push_back(static_cast<int64_t>(i));
    if (dims.empty()) return a.reshape(shape);
    return sum(a, dims, true).reshape(shape);
}

}  // namespace aclip
