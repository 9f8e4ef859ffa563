// pointwise.cuh: the elementwise kernels of pointwise.cu (every formula of engine/math/pointwise.h, a
// 16-byte vectorised path and a strided one), in a header so that tests/cuda/test_pointwise_emulated.cpp
// can also compile them for the CPU and run them on emulated threads (warp_emulation.h).
#pragma once
#include <cstdint>

#include "engine/cuda/device_math.cuh"
#include "engine/math/pointwise.h"

namespace aclip::cuda {

template <PW op, class T, class O>
__global__ void pointwise_vectorized(O* __restrict__ out, const T* __restrict__ a, const T* __restrict__ b,
                                     int64_t n, compute_t<T> s0, compute_t<T> s1) {
    using C = compute_t<T>;
    constexpr int V = vector_width<T>();  // 16 bytes of the input type per thread and step
    const int64_t vectors = n / V;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < vectors; i += stride) {
        const Pack<T, V> x = load_pack<T, V>(a + i * V), y = load_pack<T, V>(b + i * V);
        Pack<O, V> o;
#pragma unroll
        for (int k = 0; k < V; ++k) o.v[k] = st<O>(pointwise_apply<op, C>(ld(x.v[k]), ld(y.v[k]), s0, s1));
        store_pack<O, V>(out + i * V, o);
    }
    for (int64_t i = vectors * V + blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        out[i] = st<O>(pointwise_apply<op, C>(ld(a[i]), ld(b[i]), s0, s1));
}

template <PW op, class T, class O>
__global__ void pointwise_strided(O* out, const T* a, const T* b, CollapsedDims dims, int64_t n,
                                  compute_t<T> s0, compute_t<T> s1) {
    using C = compute_t<T>;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        C x = ld(a[offset_of<1>(dims, i)]);
        C y = ld(b[offset_of<2>(dims, i)]);
        out[offset_of<0>(dims, i)] = st<O>(pointwise_apply<op, C>(x, y, s0, s1));
    }
}

}  // namespace aclip::cuda
