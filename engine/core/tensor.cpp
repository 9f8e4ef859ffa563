// tensor.cpp: tensor construction, views (recorded by autograd), conversion, in-place writes, printing.
#include "engine/core/tensor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/cpu/strided_loop.h"
#include "engine/cuda/cuda_ops.h"
#include "engine/ops/ops.h"

namespace aclip {

// ---------------------------------------------------------------------------------------------------
// construction

namespace {

Tensor empty_on(const Shape& shape, DType dtype, Device device, bool pin) {
    for (int64_t d : shape) AC_CHECK(d >= 0, "empty: negative size in shape ", shape_str(shape));
    auto impl = std::make_shared<TensorImpl>();
    impl->storage = std::make_shared<Storage>(shape_numel(shape) * dtype_size(dtype), device, pin);
    impl->shape = shape;
    impl->strides = contiguous_strides(shape);
    impl->dtype = dtype;
    return Tensor(std::move(impl));
}

}  // namespace

Tensor empty(const Shape& shape, DType dtype, Device device) {
    return empty_on(shape, dtype, device, false);
}

Tensor empty_pinned(const Shape& shape, DType dtype) {
    return empty_on(shape, dtype, Device::CPU, true);
}

Tensor full(const Shape& shape, double value, DType dtype, Device device) {
    Tensor t = empty(shape, dtype, device);
    t.fill_(value);
    return t;
}
Tensor zeros(const Shape& shape, DType dtype, Device device) {
    return full(shape, 0.0, dtype, device);
}
Tensor ones(const Shape& shape, DType dtype, Device device) {
    return full(shape, 1.0, dtype, device);
}
Tensor scalar_tensor(double value, DType dtype) {
    return full({}, value, dtype);
}
Tensor zeros_like(const Tensor& t) {
    return zeros(t.shape(), t.dtype(), t.device());
}
Tensor ones_like(const Tensor& t) {
    return ones(t.shape(), t.dtype(), t.device());
}

Tensor arange(int64_t n, DType dtype) {
    Tensor t = empty({n}, dtype);
    dispatch_any(dtype, [&](auto tag) {
        using T = typename decltype(tag)::type;
        T* p = t.data<T>();
        for (int64_t i = 0; i < n; ++i) p[i] = store_as<T>(static_cast<double>(i));
    });
    return t;
}

template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape) {
    AC_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_vector: ", values.size(),
             " values do not fill shape ", shape_str(shape));
    Tensor t = empty(shape, dtype_of<T>::value);
    if (!values.empty()) std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(T));
    return t;
}
template Tensor from_vector<float>(const std::vector<float>&, const Shape&);
template Tensor from_vector<double>(const std::vector<double>&, const Shape&);
template Tensor from_vector<bf16>(const std::vector<bf16>&, const Shape&);
template Tensor from_vector<int32_t>(const std::vector<int32_t>&, const Shape&);
template Tensor from_vector<int64_t>(const std::vector<int64_t>&, const Shape&);
template Tensor from_vector<uint8_t>(const std::vector<uint8_t>&, const Shape&);

namespace {

// A new tensor viewing base's storage with another layout (no history attached yet).
Tensor make_view(const Tensor& base, Shape shape, Strides strides, int64_t offset) {
    auto impl = std::make_shared<TensorImpl>();
    impl->storage = base.impl().storage;
    impl->shape = std::move(shape);
    impl->strides = std::move(strides);
    impl->offset = offset;
    impl->dtype = base.dtype();
    return Tensor(std::move(impl));
}

// Highest element index a layout touches (for bounds checks of as_strided).
int64_t max_index(const Shape& shape, const Strides& strides, int64_t offset) {
    int64_t m = offset;
    for (size_t i = 0; i < shape.size(); ++i)
        if (shape[i] > 0) m += (shape[i] - 1) * std::max<int64_t>(strides[i], 0);
    return m;
}

}  // namespace

Tensor as_strided(const Tensor& base, const Shape& shape, const Strides& strides, int64_t offset) {
    AC_CHECK(shape.size() == strides.size(), "as_strided: shape ", shape_str(shape), " and strides ",
             shape_str(strides), " differ in rank");
    int64_t capacity = static_cast<int64_t>(base.impl().storage->bytes / dtype_size(base.dtype()));
    AC_CHECK(shape_numel(shape) == 0 || max_index(shape, strides, offset) < capacity,
             "as_strided: layout reaches past the storage of ", base.desc());
    return make_view(base, shape, strides, offset);
}

Device common_device(const char* op, std::initializer_list<const Tensor*> tensors) {
    const Tensor* first = nullptr;
    for (const Tensor* t : tensors) {
        if (!t->defined()) continue;
        if (!first) first = t;
        AC_CHECK_HINT(t->device() == first->device(),
                      "move both to one device with .to(Device::CUDA) or "
                      ".to(Device::CPU)",
                      op, ": tensors on different devices: ", first->desc(), " and ", t->desc());
    }
    return first ? first->device() : Device::CPU;
}

// ---------------------------------------------------------------------------------------------------
// properties

int64_t Tensor::size(int64_t d) const {
    return shape()[wrap_dim(d, dim(), "size")];
}

bool Tensor::is_contiguous() const {
    int64_t expected = 1;
    for (int64_t i = dim() - 1; i >= 0; --i) {
        if (shape()[i] != 1 && strides()[i] != expected) return false;
        expected *= shape()[i];
    }
    return true;
}

std::string Tensor::desc() const {
    if (!defined()) return "undefined";
    return str_cat(dtype_name(dtype()), shape_str(shape()), " ", device_name(device()));
}

void* Tensor::raw_data() const {
    return static_cast<char*>(impl().storage->data) + impl().offset * dtype_size(dtype());
}

template <class T>
std::vector<T> Tensor::to_vector() const {
    if (device() != Device::CPU) return detach().to(Device::CPU).to_vector<T>();
    Tensor c = to(dtype_of<T>::value).contiguous();
    const T* p = c.data<T>();
    return std::vector<T>(p, p + c.numel());
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int32_t> Tensor::to_vector<int32_t>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template std::vector<uint8_t> Tensor::to_vector<uint8_t>() const;

double Tensor::item() const {
    AC_CHECK(numel() == 1, "item() needs a one-element tensor; got ", desc());
    return to_vector<double>()[0];
}

Tensor& Tensor::requires_grad_(bool on) {
    AC_CHECK(!on || is_floating(dtype()), "requires_grad_ on a tensor of dtype ", dtype_name(dtype()),
             ": only floating tensors have gradients");
    AC_CHECK(is_leaf(), "requires_grad_ on a tensor computed by ", impl().grad_fn->op,
             ": only leaves can be switched; use detach() first");
    impl().requires_grad = on;
    return *this;
}

Tensor Tensor::detach() const {
    return make_view(*this, shape(), strides(), offset());
}

// ---------------------------------------------------------------------------------------------------
// views

namespace {

// requested with its one -1 (if any) inferred from t's element count.
Shape resolve_shape(const Tensor& t, const Shape& requested) {
    Shape s = requested;
    int64_t known = 1, infer = -1;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == -1) {
            AC_CHECK(infer < 0, "view: more than one -1 in ", shape_str(requested));
            infer = static_cast<int64_t>(i);
        } else {
            known *= s[i];
        }
    }
    if (infer >= 0) {
        AC_CHECK(known > 0 && t.numel() % known == 0, "view: cannot infer -1 in ", shape_str(requested),
                 " for ", t.desc());
        s[infer] = t.numel() / known;
    }
    AC_CHECK(shape_numel(s) == t.numel(), "view: shape ", shape_str(requested), " does not match ", t.desc());
    return s;
}

}  // namespace

Tensor Tensor::view(const Shape& requested) const {
    const Shape s = resolve_shape(*this, requested);
    const std::optional<Strides> st = view_strides(shape(), strides(), s);
    AC_CHECK_HINT(st.has_value(), "use reshape(), which copies when needed", "view: the strides of the ",
                  "non-contiguous tensor ", desc(), " cannot hold shape ", shape_str(s));
    Shape in_shape = shape();
    return record("view", make_view(*this, s, *st, offset()), {*this},
                  [in_shape](const Tensor& g) { return std::vector<Tensor>{g.reshape(in_shape)}; });
}

Tensor Tensor::reshape(const Shape& requested) const {
    const Shape s = resolve_shape(*this, requested);
    return view_strides(shape(), strides(), s) ? view(s) : contiguous().view(s);
}

Tensor Tensor::permute(const std::vector<int64_t>& order) const {
    AC_CHECK(static_cast<int64_t>(order.size()) == dim(), "permute: order of ", order.size(), " dims for ",
             desc());
    Shape s(dim());
    Strides st(dim());
    std::vector<int64_t> inverse(dim(), -1);
    for (int64_t i = 0; i < dim(); ++i) {
        int64_t d = wrap_dim(order[i], dim(), "permute");
        AC_CHECK(inverse[d] < 0, "permute: dim ", d, " repeated");
        inverse[d] = i;
        s[i] = shape()[d];
        st[i] = strides()[d];
    }
    return record("permute", make_view(*this, s, st, offset()), {*this},
                  [inverse](const Tensor& g) { return std::vector<Tensor>{g.permute(inverse)}; });
}

Tensor Tensor::transpose(int64_t a, int64_t b) const {
    std::vector<int64_t> order(dim());
    for (int64_t i = 0; i < dim(); ++i) order[i] = i;
    std::swap(order[wrap_dim(a, dim(), "transpose")], order[wrap_dim(b, dim(), "transpose")]);
    return permute(order);
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
    d = wrap_dim(d, dim(), "narrow");
    AC_CHECK(start >= 0 && length >= 0 && start + length <= shape()[d], "narrow: [", start, ", ",
             start + length, ") is out of range for dim ", d, " of ", desc());
    Shape s = shape();
    s[d] = length;
    Shape in_shape = shape();
    return record("narrow", make_view(*this, s, strides(), offset() + start * strides()[d]), {*this},
                  [in_shape, d, start, length](const Tensor& g) {
                      Tensor gi = zeros(in_shape, g.dtype(), g.device());
                      gi.narrow(d, start, length).copy_(g);
                      return std::vector<Tensor>{gi};
                  });
}

Tensor Tensor::select(int64_t d, int64_t index) const {
    d = wrap_dim(d, dim(), "select");
    if (index < 0) index += shape()[d];
    return narrow(d, index, 1).squeeze(d);
}

Tensor Tensor::expand(const Shape& target) const {
    AC_CHECK(static_cast<int64_t>(target.size()) >= dim(), "expand: ", desc(), " to fewer dims ",
             shape_str(target));
    Shape s = target;
    Strides st(target.size(), 0);
    size_t lead = target.size() - shape().size();
    for (size_t i = 0; i < target.size(); ++i) {
        if (i < lead) {
            AC_CHECK(target[i] >= 0, "expand: -1 in a new leading dim of ", shape_str(target));
            continue;
        }
        int64_t have = shape()[i - lead];
        if (target[i] == -1) s[i] = have;
        AC_CHECK(have == s[i] || have == 1, "expand: ", desc(), " cannot expand to ", shape_str(target));
        st[i] = have == s[i] ? strides()[i - lead] : 0;
    }
    Shape in_shape = shape();
    return record("expand", make_view(*this, s, st, offset()), {*this},
                  [in_shape](const Tensor& g) { return std::vector<Tensor>{sum_to_shape(g, in_shape)}; });
}

Tensor Tensor::squeeze(int64_t d) const {
    d = wrap_dim(d, dim(), "squeeze");
    AC_CHECK(shape()[d] == 1, "squeeze: dim ", d, " of ", desc(), " is not 1");
    Shape s = shape();
    Strides st = strides();
    s.erase(s.begin() + d);
    st.erase(st.begin() + d);
    Shape in_shape = shape();
    return record("squeeze", make_view(*this, s, st, offset()), {*this},
                  [in_shape](const Tensor& g) { return std::vector<Tensor>{g.reshape(in_shape)}; });
}

Tensor Tensor::unsqueeze(int64_t d) const {
    d = wrap_dim(d, dim() + 1, "unsqueeze");
    Shape s = shape();
    Strides st = strides();
    int64_t stride = d < dim() ? strides()[d] * shape()[d] : 1;
    s.insert(s.begin() + d, 1);
    st.insert(st.begin() + d, stride);
    Shape in_shape = shape();
    return record("unsqueeze", make_view(*this, s, st, offset()), {*this},
                  [in_shape](const Tensor& g) { return std::vector<Tensor>{g.reshape(in_shape)}; });
}

Tensor Tensor::flatten(int64_t start, int64_t end) const {
    if (dim() == 0) return reshape({1});
    start = wrap_dim(start, dim(), "flatten");
    end = wrap_dim(end, dim(), "flatten");
    Shape s(shape().begin(), shape().begin() + start);
    int64_t n = 1;
    for (int64_t i = start; i <= end; ++i) n *= shape()[i];
    s.push_back(n);
    s.insert(s.end(), shape().begin() + end + 1, shape().end());
    return reshape(s);
}

// ---------------------------------------------------------------------------------------------------
// copies and conversion

namespace {

// dst[i] = convert(src[i]) over `shape`, both strided; src may broadcast (stride 0).
void strided_copy(const Tensor& dst, const Tensor& src) {
    if (dst.device() == Device::CUDA) {
        cuda::strided_copy(dst, src.device() == Device::CUDA ? src : src.to(Device::CUDA));
        return;
    }
    if (src.device() == Device::CUDA) {  // to the host: one contiguous transfer, then the CPU copy
        strided_copy(dst, src.to(Device::CPU));
        return;
    }
    Strides src_strides = broadcast_strides(src.shape(), src.strides(), dst.shape());
    dispatch_any(dst.dtype(), [&](auto dtag) {
        using D = typename decltype(dtag)::type;
        dispatch_any(src.dtype(), [&](auto stag) {
            using S = typename decltype(stag)::type;
            D* d = static_cast<D*>(dst.raw_data());
            const S* s = static_cast<const S*>(src.raw_data());
            auto convert = [](S v) {
                if constexpr (std::is_same_v<D, S>)
                    return v;
                else
                    return store_as<D>(static_cast<double>(load(v)));
            };
            for_each_row<2>(dst.shape(), {dst.strides(), src_strides}, [&](auto off, int64_t n, auto inc) {
                D* dp = d + off[0];
                const S* sp = s + off[1];
                if (inc[0] == 1 && inc[1] == 1) {  // rows in place: loops the compiler turns into vectors
                    if constexpr (std::is_same_v<D, S>)
                        std::copy(sp, sp + n, dp);
                    else
                        for (int64_t i = 0; i < n; ++i) dp[i] = convert(sp[i]);
                } else {
                    for (int64_t i = 0; i < n; ++i) dp[i * inc[0]] = convert(sp[i * inc[1]]);
                }
            });
        });
    });
}

void check_inplace(const Tensor& t, const char* op) {
    AC_CHECK_HINT(!(grad_enabled() && t.requires_grad()),
                  "wrap the update in NoGradGuard, or use the out-of-place op", op,
                  " on a tensor that requires grad (", t.desc(), ")");
    t.impl().storage->version++;
}

}  // namespace

Tensor Tensor::contiguous() const {
    if (is_contiguous()) return *this;
    Tensor out = empty(shape(), dtype(), device());
    strided_copy(out, *this);
    return record("contiguous", out, {*this}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor Tensor::clone() const {
    Tensor out = empty(shape(), dtype(), device());
    strided_copy(out, *this);
    return record("clone", out, {*this}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

void Tensor::set_rounded(const Tensor& rounded) const {
    AC_CHECK(rounded.shape() == shape() && rounded.device() == device() && rounded.dtype() != dtype(),
             "set_rounded: ", rounded.desc(), " is not a copy of ", desc(), " in another dtype");
    impl().rounded = rounded.impl_ptr();
    impl().rounded_version = version();
}

Tensor Tensor::to(DType target) const {
    if (target == dtype()) return *this;
    Tensor out;
    if (std::shared_ptr<TensorImpl>& r = impl().rounded) {  // handed over once, if still these values
        if (r->dtype == target && impl().rounded_version == version()) out = Tensor(r);
        if (out.defined() || impl().rounded_version != version()) r.reset();
    }
    if (!out.defined()) {
        out = empty(shape(), target, device());
        strided_copy(out, *this);
    }
    if (!is_floating(dtype()) || !is_floating(target)) return out;
    DType source = dtype();
    return record("cast", out, {*this},
                  [source](const Tensor& g) { return std::vector<Tensor>{g.to(source)}; });
}

Tensor Tensor::to(Device target) const {
    if (target == device()) return *this;
    Tensor src = contiguous();
    Tensor out = empty(shape(), dtype(), target);
    size_t bytes = static_cast<size_t>(numel()) * dtype_size(dtype());
    if (target == Device::CUDA)
        cuda::copy_to_device(out.raw_data(), src.raw_data(), bytes, src.is_pinned());
    else
        cuda::copy_to_host(out.raw_data(), src.raw_data(), bytes);
    Device source = device();
    return record("to_device", out, {*this},
                  [source](const Tensor& g) { return std::vector<Tensor>{g.to(source)}; });
}

Tensor& Tensor::copy_(const Tensor& src) {
    check_inplace(*this, "copy_");
    AC_CHECK(broadcast_shapes(src.shape(), shape(), "copy_") == shape(), "copy_: ", src.desc(),
             " does not broadcast to ", desc());
    strided_copy(*this, src);
    return *this;
}

Tensor& Tensor::fill_(double value) {
    check_inplace(*this, "fill_");
    if (device() == Device::CUDA) {
        cuda::fill(*this, value);
        return *this;
    }
    dispatch_any(dtype(), [&](auto tag) {
        using T = typename decltype(tag)::type;
        T v = store_as<T>(value);
        T* p = data<T>();
        for_each_row<1>(shape(), {strides()}, [&](auto off, int64_t n, auto inc) {
            for (int64_t i = 0; i < n; ++i) p[off[0] + i * inc[0]] = v;
        });
    });
    return *this;
}

Tensor& Tensor::add_(const Tensor& other, double alpha) {
    check_inplace(*this, "add_");
    common_device("add_", {this, &other});
    AC_CHECK(broadcast_shapes(other.shape(), shape(), "add_") == shape(), "add_: ", other.desc(),
             " does not broadcast to ", desc());
    Tensor o = other.dtype() == dtype() ? other : other.to(dtype());
    if (device() == Device::CUDA) {
        cuda::pointwise(PW::Axpy, alpha, 0.0, *this, *this, o);
        return *this;
    }
    Strides os = broadcast_strides(o.shape(), o.strides(), shape());
    dispatch_float(dtype(), "add_", [&](auto tag) {
        using T = typename decltype(tag)::type;
        using C = compute_t<T>;
        T* p = data<T>();
        const T* q = o.data<T>();
        C a = static_cast<C>(alpha);
        for_each_row<2>(shape(), {strides(), os}, [&](auto off, int64_t n, auto inc) {
            for (int64_t i = 0; i < n; ++i) {
                T& d = p[off[0] + i * inc[0]];
                d = store_as<T>(load(d) + a * load(q[off[1] + i * inc[1]]));
            }
        });
    });
    return *this;
}

Tensor& Tensor::mul_(double factor) {
    check_inplace(*this, "mul_");
    if (device() == Device::CUDA) {
        cuda::pointwise(PW::MulScalar, factor, 0.0, *this, *this, Tensor());
        return *this;
    }
    dispatch_float(dtype(), "mul_", [&](auto tag) {
        using T = typename decltype(tag)::type;
        using C = compute_t<T>;
        T* p = data<T>();
        C f = static_cast<C>(factor);
        for_each_row<1>(shape(), {strides()}, [&](auto off, int64_t n, auto inc) {
            for (int64_t i = 0; i < n; ++i)
                p[off[0] + i * inc[0]] = store_as<T>(load(p[off[0] + i * inc[0]]) * f);
        });
    });
    return *this;
}

// ---------------------------------------------------------------------------------------------------
// printing: "tensor(f32[2, 3] cpu, [[1, 2, 3], [4, 5, 6]])", eliding the middle of long dims

namespace {
void print_rec(std::ostream& os, const std::vector<double>& v, const Shape& s, size_t d, int64_t base) {
    if (d == s.size()) {
        os << v[base];
        return;
    }
    int64_t stride = 1;
    for (size_t i = d + 1; i < s.size(); ++i) stride *= s[i];
    os << "[";
    const int64_t n = s[d], edge = 3;
    for (int64_t i = 0; i < n; ++i) {
        if (n > 2 * edge && i == edge) {
            os << "..., ";
            i = n - edge;
        }
        print_rec(os, v, s, d + 1, base + i * stride);
        if (i + 1 < n) os << ", ";
    }
    os << "]";
}
}  // namespace

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
    if (!t.defined()) return os << "tensor(undefined)";
    os << "tensor(" << t.desc() << ", ";
    std::vector<double> v = t.to_vector<double>();
    std::ostringstream body;
    body << std::setprecision(6);
    print_rec(body, v, t.shape(), 0, 0);
    return os << body.str() << (t.requires_grad() ? ", requires_grad" : "") << ")";
}

}  // namespace aclip
