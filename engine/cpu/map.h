// map.h: elementwise ops over 1, 2 or 3 broadcasting operands, named by a pointwise formula of
// engine/math/pointwise.h. On the CPU the formula is inlined into a strided loop; on the GPU the same
// formula runs in the CUDA pointwise kernel. Values are computed in the compute type (f32 for bf16
// storage) and stored in the output dtype: the input's, or u8 for comparisons.
#pragma once
#include <type_traits>

#include "engine/core/tensor.h"
#include "engine/cpu/strided_loop.h"
#include "engine/cuda/cuda_ops.h"
#include "engine/math/pointwise.h"
#include "engine/ops/autocast.h"

namespace aclip {

// The CPU loop of map_pointwise: a is A, b is B, out is O; computed in compute_t<A> (f32 when A and B are
// f32 and bf16 in either order, as the GPU computes them).
template <PW op, class A, class B, class O>
void map_rows(const Tensor& out, const Tensor& a, const Tensor& b, const Shape& shape, double s0, double s1) {
    using C = compute_t<A>;
    Strides sa = broadcast_strides(a.shape(), a.strides(), shape);
    Strides sb = b.defined() ? broadcast_strides(b.shape(), b.strides(), shape) : Strides(shape.size(), 0);
    const A* pa = a.data<A>();
    const B* pb = b.defined() ? b.data<B>() : reinterpret_cast<const B*>(pa);  // unary: never read
    O* po = out.data<O>();
    const C c0 = static_cast<C>(s0), c1 = static_cast<C>(s1);
    for_each_row<3>(shape, {out.strides(), sa, sb}, [&](auto off, int64_t n, auto inc) {
        O* o = po + off[0];
        const A* x = pa + off[1];
        const B* y = pb + off[2];
        if constexpr (pointwise_is_unary(op)) {  // y is ignored
            if (inc[1] == 1) {
                for (int64_t i = 0; i < n; ++i)
                    o[i] = store_as<O>(pointwise_apply<op, C>(load(x[i]), C(0), c0, c1));
            } else {
                for (int64_t i = 0; i < n; ++i)
                    o[i] = store_as<O>(pointwise_apply<op, C>(load(x[i * inc[1]]), C(0), c0, c1));
            }
        } else if (inc[1] == 1 && inc[2] == 1) {
            for (int64_t i = 0; i < n; ++i)
                o[i] = store_as<O>(pointwise_apply<op, C>(load(x[i]), load(y[i]), c0, c1));
        } else if (inc[1] == 1 && inc[2] == 0) {  // y one value along the row (a bias, an expanded scalar)
            const C yv = load(y[0]);
            for (int64_t i = 0; i < n; ++i)
                o[i] = store_as<O>(pointwise_apply<op, C>(load(x[i]), yv, c0, c1));
        } else if (inc[1] == 0 && inc[2] == 1) {  // x one value along the row
            const C xv = load(x[0]);
            for (int64_t i = 0; i < n; ++i)
                o[i] = store_as<O>(pointwise_apply<op, C>(xv, load(y[i]), c0, c1));
        } else {
            for (int64_t i = 0; i < n; ++i)
                o[i] = store_as<O>(pointwise_apply<op, C>(load(x[i * inc[1]]), load(y[i * inc[2]]), c0, c1));
        }
    });
}

// out = op(a, b; s0, s1); b undefined for unary ops. Shapes broadcast; a and b share a floating dtype, or,
// under autocast, are f32 and bf16 for the formulas that take both (pointwise_takes_mixed: f32 out).
template <PW op>
Tensor map_pointwise(const Tensor& a, const Tensor& b, double s0 = 0.0, double s1 = 0.0) {
    const char* name = pointwise_name(op);
    const Device device = common_device(name, {&a, &b});
    Shape shape = a.shape();
    DType value_dtype = a.dtype();
    if (b.defined()) {
        const bool mixed =
            pointwise_takes_mixed(op) && autocast_enabled() && f32_with_bf16(a.dtype(), b.dtype());
        AC_CHECK(a.dtype() == b.dtype() || mixed, name, ": dtypes differ: ", a.desc(), " and ", b.desc(),
                 "; cast one with .to()");
        if (mixed) value_dtype = DType::F32;
        shape = broadcast_shapes(a.shape(), b.shape(), name);
    }
    Tensor out = empty(shape, pointwise_writes_mask(op) ? DType::U8 : value_dtype, device);
    if (device == Device::CUDA) {
        cuda::pointwise(op, s0, s1, out, a, b);
        return out;
    }
    if constexpr (pointwise_takes_mixed(op)) {
        if (b.defined() && a.dtype() != b.dtype()) {
            if (a.dtype() == DType::F32)
                map_rows<op, float, bf16, float>(out, a, b, shape, s0, s1);
            else
                map_rows<op, bf16, float, float>(out, a, b, shape, s0, s1);
            return out;
        }
    }
    dispatch_float(a.dtype(), name, [&](auto tag) {
        using T = typename decltype(tag)::type;
        using O = std::conditional_t<pointwise_writes_mask(op), uint8_t, T>;  // the only output dtype
        map_rows<op, T, T, O>(out, a, b, shape, s0, s1);
    });
    return out;
}

template <PW op>
Tensor map1(const Tensor& a, double s0 = 0.0, double s1 = 0.0) {
    return map_pointwise<op>(a, Tensor(), s0, s1);
}

// out[i] = mask[i] != 0 ? a[i] : b[i] with broadcasting; mask is u8, a and b share a floating dtype.
inline Tensor map_where(const char* op, const Tensor& mask, const Tensor& a, const Tensor& b) {
    const Device device = common_device(op, {&mask, &a, &b});
    AC_CHECK(mask.dtype() == DType::U8, op, ": mask must be u8, got ", mask.desc());
    AC_CHECK(a.dtype() == b.dtype(), op, ": dtypes differ: ", a.desc(), " and ", b.desc());
    Shape shape = broadcast_shapes(broadcast_shapes(mask.shape(), a.shape(), op), b.shape(), op);
    Tensor out = empty(shape, a.dtype(), device);
    if (device == Device::CUDA) {
        cuda::where(out, mask, a, b);
        return out;
    }
    Strides sm = broadcast_strides(mask.shape(), mask.strides(), shape);
    Strides sa = broadcast_strides(a.shape(), a.strides(), shape);
    Strides sb = broadcast_strides(b.shape(), b.strides(), shape);
    dispatch_float(a.dtype(), op, [&](auto tag) {
        using T = typename decltype(tag)::type;
        const uint8_t* pm = mask.data<uint8_t>();
        const T* pa = a.data<T>();
        const T* pb = b.data<T>();
        T* po = out.data<T>();
        for_each_row<4>(shape, {out.strides(), sm, sa, sb}, [&](auto off, int64_t n, auto inc) {
            for (int64_t i = 0; i < n; ++i)
                po[off[0] + i] =
                    pm[off[1] + i * inc[1]] != 0 ? pa[off[2] + i * inc[2]] : pb[off[3] + i * inc[3]];
        });
    });
    return out;
}

}  // namespace aclip
