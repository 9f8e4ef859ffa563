// map.h: elementwise CPU kernels over 1, 2 or 3 broadcasting operands, parameterised by a scalar
// functor. The functor receives values in the compute type (f32 for bf16 storage) and its result is
// stored in the output dtype. Every pointwise op and pointwise backward rule is one call to these.
#pragma once
#include <optional>

#include "engine/core/tensor.h"
#include "engine/cpu/strided_loop.h"

namespace aclip {

// out[i] = f(a[i]); out has a's shape and dtype `out_dtype` (default: a's).
template <class F>
Tensor map1(const char* op, const Tensor& a, F f, std::optional<DType> out_dtype = std::nullopt) {
    require_cpu(op, {&a});
    Tensor out = empty(a.shape(), out_dtype.value_or(a.dtype()));
    dispatch_float(a.dtype(), op, [&](auto tag) {
        using T = typename decltype(tag)::type;
        dispatch_any(out.dtype(), [&](auto otag) {
            using O = typename decltype(otag)::type;
            const T* pa = a.data<T>();
            O* po = out.data<O>();
            for_each_row<2>(out.shape(), {out.strides(), a.strides()}, [&](auto off, int64_t n, auto inc) {
                O* o = po + off[0];
                const T* x = pa + off[1];
                if (inc[1] == 1) {
                    for (int64_t i = 0; i < n; ++i) o[i] = store_as<O>(f(load(x[i])));
                } else {
                    for (int64_t i = 0; i < n; ++i) o[i] = store_as<O>(f(load(x[i * inc[1]])));
                }
            });
        });
    });
    return out;
}

// out[i] = f(a[i], b[i]) with broadcasting; a and b share a floating dtype.
template <class F>
Tensor map2(const char* op, const Tensor& a, const Tensor& b, F f,
            std::optional<DType> out_dtype = std::nullopt) {
    require_cpu(op, {&a, &b});
    AC_CHECK(a.dtype() == b.dtype(), op, ": dtypes differ: ", a.desc(), " and ", b.desc(),
             "; cast one with .to()");
    Shape shape = broadcast_shapes(a.shape(), b.shape(), op);
    Tensor out = empty(shape, out_dtype.value_or(a.dtype()));
    Strides sa = broadcast_strides(a.shape(), a.strides(), shape);
    Strides sb = broadcast_strides(b.shape(), b.strides(), shape);
    dispatch_float(a.dtype(), op, [&](auto tag) {
        using T = typename decltype(tag)::type;
        dispatch_any(out.dtype(), [&](auto otag) {
            using O = typename decltype(otag)::type;
            const T* pa = a.data<T>();
            const T* pb = b.data<T>();
            O* po = out.data<O>();
            for_each_row<3>(shape, {out.strides(), sa, sb}, [&](auto off, int64_t n, auto inc) {
                O* o = po + off[0];
                const T* x = pa + off[1];
                const T* y = pb + off[2];
                if (inc[1] == 1 && inc[2] == 1) {
                    for (int64_t i = 0; i < n; ++i) o[i] = store_as<O>(f(load(x[i]), load(y[i])));
                } else {
                    for (int64_t i = 0; i < n; ++i)
                        o[i] = store_as<O>(f(load(x[i * inc[1]]), load(y[i * inc[2]])));
                }
            });
        });
    });
    return out;
}

// out[i] = f(mask[i] != 0, a[i], b[i]) with broadcasting; mask is u8, a and b share a floating dtype.
template <class F>
Tensor map_masked(const char* op, const Tensor& mask, const Tensor& a, const Tensor& b, F f) {
    require_cpu(op, {&mask, &a, &b});
    AC_CHECK(mask.dtype() == DType::U8, op, ": mask must be u8, got ", mask.desc());
    AC_CHECK(a.dtype() == b.dtype(), op, ": dtypes differ: ", a.desc(), " and ", b.desc());
    Shape shape = broadcast_shapes(broadcast_shapes(mask.shape(), a.shape(), op), b.shape(), op);
    Tensor out = empty(shape, a.dtype());
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
                po[off[0] + i] = store_as<T>(f(pm[off[1] + i * inc[1]] != 0, load(pa[off[2] + i * inc[2]]),
                                               load(pb[off[3] + i * inc[3]])));
        });
    });
    return out;
}

}  // namespace aclip
