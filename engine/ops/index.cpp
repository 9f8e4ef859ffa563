// index.cpp: ops that move elements by index (index_select, embedding, gather, gather_rows,
// scatter_add), join and cut tensors (concat, stack, split), and order them (topk, argsort; no gradient).
// On the CPU an index is checked before it is used; on the GPU the kernels check the indices themselves
// and a bad one is reported at the next synchronisation (engine/cuda/index_fault.cuh), so no op here
// reads a CUDA index tensor back to the host.
#include <algorithm>
#include <numeric>

#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/cpu/strided_loop.h"
#include "engine/cuda/cuda_ops.h"
#include "engine/ops/ops.h"

namespace aclip {

namespace {

void check_index_dtype(const Tensor& index, const char* op) {
    AC_CHECK(index.dtype() == DType::I64 || index.dtype() == DType::I32, op,
             ": index must be i32 or i64, got ", index.desc());
}

// The values of a CPU index, each checked to lie in [0, limit) (of dim `dim` of x).
std::vector<int64_t> checked_indices(const Tensor& index, int64_t limit, const char* op, const Tensor& x,
                                     int64_t dim) {
    std::vector<int64_t> idx = index.contiguous().to_vector<int64_t>();
    for (size_t i = 0; i < idx.size(); ++i)
        AC_CHECK(idx[i] >= 0 && idx[i] < limit, op, ": index ", idx[i], " at position ", i,
                 " is out of range [0, ", limit, ") for dim ", dim, " of ", x.desc());
    return idx;
}

// x seen as (O, S, I) around a dim, the index as L values shared by every o (index_stride 0) or a row of
// L values per o (index_stride L). dst (O, L, I) = x at those rows (select_rows), or dst (O, S, I) += src
// (O, L, I) at them (add_rows).
template <class T>
void select_rows(const T* x, T* dst, const std::vector<int64_t>& idx, int64_t index_stride, int64_t O,
                 int64_t S, int64_t L, int64_t I) {
    parallel_for(O * L, I, [&](int64_t p) {
        const int64_t o = p / L, row = idx[o * index_stride + p % L];
        std::copy(x + (o * S + row) * I, x + (o * S + row + 1) * I, dst + p * I);
    });
}

template <class T>
void add_rows(T* dst, const T* src, const std::vector<int64_t>& idx, int64_t index_stride, int64_t O,
              int64_t S, int64_t L, int64_t I) {
    parallel_for(O, L * I, [&](int64_t o) {  // rows of one o may repeat an index: keep each o on one thread
        for (int64_t l = 0; l < L; ++l) {
            T* d = dst + (o * S + idx[o * index_stride + l]) * I;
            const T* s = src + (o * L + l) * I;
            for (int64_t i = 0; i < I; ++i) d[i] = store_as<T>(load(d[i]) + load(s[i]));
        }
    });
}

// Product of dims before / after d.
int64_t outer_size(const Shape& s, int64_t d) {
    return shape_numel(Shape(s.begin(), s.begin() + d));
}
int64_t inner_size(const Shape& s, int64_t d) {
    return shape_numel(Shape(s.begin() + d + 1, s.end()));
}

// Rows along dim: x (..., S, ...) at index (L) -> (..., L, ...), or, `batched`, dim 1 of x (O, S, ...) at
// index (O, L) -> (O, L, ...). The backward adds the gradient's rows back (add_rows, cuda::index_add).
Tensor take_rows(const Tensor& x, int64_t dim, const Tensor& index, bool batched, const char* op) {
    const Device device = common_device(op, {&x, &index});
    check_index_dtype(index, op);
    const int64_t O = outer_size(x.shape(), dim), S = x.size(dim), I = inner_size(x.shape(), dim);
    const int64_t L = batched ? index.size(1) : index.numel(), stride = batched ? L : 0;
    std::vector<int64_t> idx;  // the CPU's indices, checked
    if (device == Device::CPU) idx = checked_indices(index, S, op, x, dim);
    Shape out_shape = x.shape();
    out_shape[dim] = L;
    Tensor xc = x.contiguous();
    Tensor out = empty(out_shape, x.dtype(), device);
    Tensor index64 = index.to(DType::I64).contiguous();
    if (device == Device::CUDA) {
        cuda::index_select(xc, O, S, I, index64, batched, out, op);
    } else {
        dispatch_any(x.dtype(), [&](auto tag) {
            using T = typename decltype(tag)::type;
            select_rows<T>(xc.data<T>(), out.data<T>(), idx, stride, O, S, L, I);
        });
    }
    const Shape in_shape = x.shape();
    const DType dt = x.dtype();
    return record(op, out, {x, Tensor()}, [=](const Tensor& g) {
        Tensor dx = zeros(in_shape, dt, g.device());
        Tensor gc = g.contiguous();
        if (g.device() == Device::CUDA) {
            cuda::index_add(dx, O, S, I, index64, batched, gc, op);
        } else {
            dispatch_any(dt, [&](auto tag) {
                using T = typename decltype(tag)::type;
                add_rows<T>(dx.data<T>(), gc.data<T>(), idx, stride, O, S, L, I);
            });
        }
        return std::vector<Tensor>{dx, Tensor()};
    });
}

}  // namespace

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
    dim = wrap_dim(dim, x.dim(), "index_select");
    AC_CHECK(index.dim() == 1, "index_select: index must be 1-D, got ", index.desc());
    return take_rows(x, dim, index, false, "index_select");
}

Tensor embedding(const Tensor& weight, const Tensor& ids) {
    AC_CHECK(weight.dim() == 2, "embedding: weight must be (V, D), got ", weight.desc());
    Shape out_shape = ids.shape();
    out_shape.push_back(weight.size(1));
    return take_rows(weight, 0, ids.reshape({-1}), false, "embedding").reshape(out_shape);
}

Tensor gather_rows(const Tensor& x, const Tensor& index) {
    AC_CHECK(x.dim() >= 2 && index.dim() == 2 && index.size(0) == x.size(0), "gather_rows: x ", x.desc(),
             " must be (B, N, ...) and index ", index.desc(), " (B, K)");
    return take_rows(x, 1, index, true, "gather_rows");
}

namespace {

// Checks that index fits x (and src) outside dim.
void check_indexed_shape(const Tensor& x, int64_t dim, const Tensor& index, const char* op) {
    const Shape& s = index.shape();
    for (int64_t d = 0; d < index.dim(); ++d)
        if (d != dim)
            AC_CHECK(s[d] <= x.size(d), op, ": index ", index.desc(), " is larger than ", x.desc(),
                     " in dim ", d);
}

// Calls fn(index_offset_in_x, position_in_index) for every element of index, where the x offset
// replaces the coordinate along dim by the index value. Shared by gather and scatter_add on the CPU.
template <class Fn>
void for_each_indexed(const Tensor& x, int64_t dim, const Tensor& index, const char* op, Fn fn) {
    const std::vector<int64_t> idx = checked_indices(index, x.size(dim), op, x, dim);
    const Shape& s = index.shape();
    std::vector<int64_t> coord(s.size(), 0);
    const int64_t n = index.numel();
    for (int64_t p = 0; p < n; ++p) {
        int64_t off = 0;
        for (size_t d = 0; d < s.size(); ++d)
            off += (static_cast<int64_t>(d) == dim ? idx[p] : coord[d]) * x.strides()[d];
        fn(off, p);
        for (int64_t d = static_cast<int64_t>(s.size()) - 1; d >= 0; --d) {
            if (++coord[d] < s[d]) break;
            coord[d] = 0;
        }
    }
}

}  // namespace

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
    const Device device = common_device("gather", {&x, &index});
    dim = wrap_dim(dim, x.dim(), "gather");
    AC_CHECK(index.dim() == x.dim(), "gather: index ", index.desc(), " must have the rank of ", x.desc());
    check_index_dtype(index, "gather");
    check_indexed_shape(x, dim, index, "gather");
    Tensor out = empty(index.shape(), x.dtype(), device);
    if (device == Device::CUDA) {
        cuda::gather(x, dim, index.to(DType::I64).contiguous(), out);
    } else {
        dispatch_any(x.dtype(), [&](auto tag) {
            using T = typename decltype(tag)::type;
            const T* px = x.data<T>();
            T* po = out.data<T>();
            for_each_indexed(x, dim, index, "gather", [&](int64_t off, int64_t p) { po[p] = px[off]; });
        });
    }
    Shape in_shape = x.shape();
    DType dt = x.dtype();
    return record("gather", out, {x, Tensor()}, [=](const Tensor& g) {
        return std::vector<Tensor>{scatter_add(zeros(in_shape, dt, g.device()), dim, index, g), Tensor()};
    });
}

Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
    const Device device = common_device("scatter_add", {&x, &index, &src});
    dim = wrap_dim(dim, x.dim(), "scatter_add");
    AC_CHECK(index.dim() == x.dim() && src.dim() == x.dim(), "scatter_add: index ", index.desc(), " and src ",
             src.desc(), " must have the rank of ", x.desc());
    AC_CHECK(src.dtype() == x.dtype(), "scatter_add: src ", src.desc(), " must have the dtype of ", x.desc());
    for (int64_t d = 0; d < x.dim(); ++d)
        AC_CHECK(index.size(d) <= src.size(d), "scatter_add: index ", index.desc(), " is larger than src ",
                 src.desc(), " in dim ", d);
    check_index_dtype(index, "scatter_add");
    check_indexed_shape(x, dim, index, "scatter_add");
    Tensor out = x.detach().contiguous().clone();
    // src elements are read at the index's coordinates (src may be larger than index)
    Tensor src_view = as_strided(src, index.shape(), src.strides(), src.offset());
    Tensor sc = src_view.contiguous();
    if (device == Device::CUDA) {
        cuda::scatter_add(out, dim, index.to(DType::I64).contiguous(), sc);
    } else {
        dispatch_any(x.dtype(), [&](auto tag) {
            using T = typename decltype(tag)::type;
            T* po = out.data<T>();
            const T* ps = sc.data<T>();
            for_each_indexed(out, dim, index, "scatter_add", [&](int64_t off, int64_t p) {
                po[off] = store_as<T>(load(po[off]) + load(ps[p]));
            });
        });
    }
    Shape src_shape = src.shape(), idx_shape = index.shape();
    bool rs = src.requires_grad();
    return record("scatter_add", out, {x, Tensor(), src}, [=](const Tensor& g) {
        Tensor gs;
        if (rs) {
            gs = gather(g, dim, index);
            if (idx_shape != src_shape) {  // src elements outside the index's extent get no gradient
                Tensor full_gs = zeros(src_shape, g.dtype(), g.device());
                as_strided(full_gs, idx_shape, full_gs.strides(), 0).copy_(gs);
                gs = full_gs;
            }
        }
        return std::vector<Tensor>{g, Tensor(), gs};
    });
}

Tensor concat(const std::vector<Tensor>& xs, int64_t dim) {
    AC_CHECK(!xs.empty(), "concat: no tensors");
    const Tensor& first = xs[0];
    dim = wrap_dim(dim, first.dim(), "concat");
    Shape out_shape = first.shape();
    out_shape[dim] = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
        const Tensor& t = xs[i];
        common_device("concat", {&first, &t});
        bool same = t.dim() == first.dim() && t.dtype() == first.dtype();
        for (int64_t d = 0; same && d < t.dim(); ++d) same = d == dim || t.size(d) == first.size(d);
        AC_CHECK(same, "concat: tensor ", i, " ", t.desc(), " does not match tensor 0 ", first.desc(),
                 " outside dim ", dim);
        out_shape[dim] += t.size(dim);
    }
    Tensor out = empty(out_shape, first.dtype(), first.device());
    std::vector<int64_t> sizes;
    {
        NoGradGuard no_grad;
        int64_t at = 0;
        for (const Tensor& t : xs) {
            out.narrow(dim, at, t.size(dim)).copy_(t);
            at += t.size(dim);
            sizes.push_back(t.size(dim));
        }
    }
    return record("concat", out, xs, [sizes, dim](const Tensor& g) { return split(g, sizes, dim); });
}

Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
    AC_CHECK(!xs.empty(), "stack: no tensors");
    dim = wrap_dim(dim, xs[0].dim() + 1, "stack");
    std::vector<Tensor> expanded;
    for (const Tensor& t : xs) expanded.push_back(t.unsqueeze(dim));
    return concat(expanded, dim);
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
    dim = wrap_dim(dim, x.dim(), "split");
    int64_t total = std::accumulate(sizes.begin(), sizes.end(), int64_t{0});
    AC_CHECK(total == x.size(dim), "split: sizes sum to ", total, " but dim ", dim, " of ", x.desc(), " is ",
             x.size(dim));
    std::vector<Tensor> parts;
    int64_t at = 0;
    for (int64_t s : sizes) {
        parts.push_back(x.narrow(dim, at, s));
        at += s;
    }
    return parts;
}

namespace {

// Per row of the last dim: the order of indices by value (descending or ascending), stable.
Tensor row_order(const Tensor& x, bool descending, int64_t keep, const char* op) {
    AC_CHECK(x.dim() >= 1, op, ": needs at least one dim, got ", x.desc());
    Shape out_shape = x.shape();
    out_shape.back() = keep;
    if (x.device() == Device::CUDA) {
        Tensor index = empty(out_shape, DType::I64, Device::CUDA);
        cuda::sort_rows(x.contiguous(), descending, keep, index);
        return index;
    }
    const int64_t D = x.size(-1), R = x.numel() / std::max<int64_t>(D, 1);
    std::vector<double> v = x.to_vector<double>();
    std::vector<int64_t> order(R * keep);
    parallel_for(R, D * 8, [&](int64_t r) {
        std::vector<int64_t> idx(D);
        std::iota(idx.begin(), idx.end(), 0);
        const double* row = v.data() + r * D;
        auto before = [&](int64_t a, int64_t b) { return descending ? row[a] > row[b] : row[a] < row[b]; };
        if (keep < D)
            std::partial_sort(idx.begin(), idx.begin() + keep, idx.end(), [&](int64_t a, int64_t b) {
                return before(a, b) || (!before(b, a) && a < b);  // ties: lower index first
            });
        else
            std::stable_sort(idx.begin(), idx.end(), before);
        std::copy(idx.begin(), idx.begin() + keep, order.begin() + r * keep);
    });
    return from_vector(order, out_shape);
}

}  // namespace

std::pair<Tensor, Tensor> topk(const Tensor& x, int64_t k) {
    AC_CHECK(x.dim() >= 1 && k >= 0 && k <= x.size(-1), "topk: k = ", k, " is out of range for ", x.desc());
    Tensor index = row_order(x, true, k, "topk");
    NoGradGuard no_grad;
    return {gather(x.detach(), -1, index), index};
}

Tensor argsort(const Tensor& x, bool descending) {
    return row_order(x, descending, x.dim() ? x.size(-1) : 1, "argsort");
}

}  // namespace aclip
