// pointwise.cuh: the elementwise kernels of pointwise.cu (every formula of engine/math/pointwise.h, a
// 16-byte vectorised path and a strided one) and its copies between dtypes (the same two paths), in a
// header so that tests/cuda/test_pointwise_emulated.cpp can also compile them for the CPU and run them on
// emulated threads (warp_emulation.h).
#pragma once
#include <cstdint>
#include <type_traits>

#include "engine/cuda/device_math.cuh"
#include "engine/math/pointwise.h"

namespace aclip::cuda {

// Elements a thread moves a step when operands of types A and B are read and written together: 16 bytes
// of the wider one.
template <class A, class B>
constexpr int pack_width() {
    return 16 / static_cast<int>(sizeof(A) > sizeof(B) ? sizeof(A) : sizeof(B));
}

// a is A, b is B: the same type, or f32 and bf16 for pointwise_takes_mixed formulas (computed in f32).

template <PW op, class A, class B, class O>
__global__ void pointwise_vectorized(O* __restrict__ out, const A* __restrict__ a, const B* __restrict__ b,
                                     int64_t n, compute_t<A> s0, compute_t<A> s1) {
    using C = compute_t<A>;
    constexpr int V = pack_width<A, B>();
    const int64_t vectors = n / V;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < vectors; i += stride) {
        const Pack<A, V> x = load_pack<A, V>(a + i * V);
        const Pack<B, V> y = load_pack<B, V>(b + i * V);
        Pack<O, V> o;
#pragma unroll
        for (int k = 0; k < V; ++k) o.v[k] = st<O>(pointwise_apply<op, C>(ld(x.v[k]), ld(y.v[k]), s0, s1));
        store_pack<O, V>(out + i * V, o);
    }
    for (int64_t i = vectors * V + blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        out[i] = st<O>(pointwise_apply<op, C>(ld(a[i]), ld(b[i]), s0, s1));
}

template <PW op, class A, class B, class O>
__global__ void pointwise_strided(O* out, const A* a, const B* b, CollapsedDims dims, int64_t n,
                                  compute_t<A> s0, compute_t<A> s1) {
    using C = compute_t<A>;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const Offsets<3> o = offsets_of<3>(dims, i);
        out[o.at[0]] = st<O>(pointwise_apply<op, C>(ld(a[o.at[1]]), ld(b[o.at[2]]), s0, s1));
    }
}

// One element converted as Tensor::to does on the CPU: bf16 through f32, everything else by a C++ cast.
template <class D, class S>
__device__ __forceinline__ D convert_element(S v) {
    if constexpr (std::is_same_v<D, S>)
        return v;
    else if constexpr (std::is_same_v<S, bf16>)
        return st<D>(ld(v));
    else
        return st<D>(v);
}

// A cast between contiguous tensors of one shape (autocast's casts of activations and gradients): V
// elements a thread and step, 16 bytes of the wider dtype; then the tail one by one.
template <class D, class S>
__global__ void copy_vectorized(D* __restrict__ dst, const S* __restrict__ src, int64_t n) {
    constexpr int V = pack_width<D, S>();
    const int64_t vectors = n / V;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < vectors; i += stride) {
        const Pack<S, V> x = load_pack<S, V>(src + i * V);
        Pack<D, V> o;
#pragma unroll
        for (int k = 0; k < V; ++k) o.v[k] = convert_element<D, S>(x.v[k]);
        store_pack<D, V>(dst + i * V, o);
    }
    for (int64_t i = vectors * V + blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        dst[i] = convert_element<D, S>(src[i]);
}

// A strided copy whose dims pack_dims took V = pack_width<D, S>() at a time (launch.h): a pack a thread and
// step, one index computation and one 16-byte access (at most) for V elements.
template <class D, class S>
__global__ void copy_strided_packs(D* dst, const S* src, CollapsedDims packs, int64_t n_packs) {
    constexpr int V = pack_width<D, S>();
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n_packs; i += stride) {
        const Offsets<2> o = offsets_of<2>(packs, i);
        const Pack<S, V> x = load_pack<S, V>(src + o.at[1]);
        Pack<D, V> y;
#pragma unroll
        for (int k = 0; k < V; ++k) y.v[k] = convert_element<D, S>(x.v[k]);
        store_pack<D, V>(dst + o.at[0], y);
    }
}

// Any copy: dst and src (broadcast to dst's shape) through collapsed dims, one element a thread and step.
template <class D, class S>
__global__ void copy_strided(D* dst, const S* src, CollapsedDims dims, int64_t n) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const Offsets<2> o = offsets_of<2>(dims, i);
        dst[o.at[0]] = convert_element<D, S>(src[o.at[1]]);
    }
}

}  // namespace aclip::cuda
