// resize.cu: bilinear resize (align_corners=False, no antialias) and average pooling of (N, C, H, W)
// maps, forward and adjoint, with the tap arithmetic of engine/math/bilinear.h (in double, as the CPU op).
// The bilinear adjoint scatters with f32 atomics into a zeroed buffer, then casts.
#include "engine/cuda/cuda_ops.h"
#include "engine/cuda/device_util.cuh"
#include "engine/math/bilinear.h"

namespace aclip::cuda {

namespace {

constexpr int kThreads = 256;

// forward: x (P, H, W) -> out (P, OH, OW); adjoint: g (P, OH, OW) scattered into acc (P, H, W).
template <class T>
__global__ void bilinear_kernel(const T* src, T* dst, float* acc, int64_t P, int64_t H, int64_t W, int64_t OH,
                                int64_t OW, bool adjoint) {
    const int64_t n = P * OH * OW;
    for (int64_t q = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; q < n;
         q += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t p = q / (OH * OW), y = (q / OW) % OH, x = q % OW;
        const BilinearTap ty = bilinear_tap(y, H, OH), tx = bilinear_tap(x, W, OW);
        const double wy = ty.w1, wx = tx.w1;
        if (adjoint) {
            const double gv = ld(src[q]);
            float* a = acc + p * H * W;
            atomicAdd(a + ty.i0 * W + tx.i0, static_cast<float>(gv * (1 - wy) * (1 - wx)));
            atomicAdd(a + ty.i0 * W + tx.i1, static_cast<float>(gv * (1 - wy) * wx));
            atomicAdd(a + ty.i1 * W + tx.i0, static_cast<float>(gv * wy * (1 - wx)));
            atomicAdd(a + ty.i1 * W + tx.i1, static_cast<float>(gv * wy * wx));
        } else {
            const T* s = src + p * H * W;
            dst[q] = st<T>(bilinear_mix(ld(s[ty.i0 * W + tx.i0]), ld(s[ty.i0 * W + tx.i1]),
                                        ld(s[ty.i1 * W + tx.i0]), ld(s[ty.i1 * W + tx.i1]), wy, wx));
        }
    }
}

// forward: one thread per output (P, H/k, W/k); adjoint: one thread per input-gradient element (P, H, W).
template <class T>
__global__ void pool_kernel(const T* src, T* dst, int64_t P, int64_t H, int64_t W, int64_t k, bool adjoint) {
    const int64_t OH = H / k, OW = W / k;
    const double inv = 1.0 / static_cast<double>(k * k);
    const int64_t n = adjoint ? P * H * W : P * OH * OW;
    for (int64_t q = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; q < n;
         q += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        if (adjoint) {
            const int64_t p = q / (H * W), y = (q / W) % H, x = q % W;
            dst[q] = st<T>(ld(src[(p * OH + y / k) * OW + x / k]) * inv);
        } else {
            const int64_t p = q / (OH * OW), y = (q / OW) % OH, x = q % OW;
            double s = 0;
            for (int64_t dy = 0; dy < k; ++dy)
                for (int64_t dx = 0; dx < k; ++dx) s += ld(src[(p * H + y * k + dy) * W + x * k + dx]);
            dst[q] = st<T>(s * inv);
        }
    }
}

AC_REGISTER_KERNEL("resize_bilinear");
AC_REGISTER_KERNEL("avg_pool2d");

}  // namespace

void resize_bilinear(const Tensor& x, const Tensor& out, bool adjoint) {
    // forward: x (N, C, H, W), out (N, C, OH, OW); adjoint: x is the gradient (N, C, OH, OW), out (N, C, H,
    // W)
    const Tensor& big = adjoint ? out : x;
    const Tensor& small = adjoint ? x : out;
    const int64_t P = big.size(0) * big.size(1), H = big.size(2), W = big.size(3), OH = small.size(2),
                  OW = small.size(3);
    const int64_t n = P * OH * OW;
    if (n == 0) return;
    Tensor acc = adjoint ? zeros({P, H, W}, DType::F32, Device::CUDA) : Tensor();
    dispatch_gpu_float(x.dtype(), "resize_bilinear", [&](auto tag) {
        using T = typename decltype(tag)::type;
        bilinear_kernel<T><<<grid_for(n, kThreads), kThreads>>>(
            static_cast<const T*>(x.raw_data()), static_cast<T*>(out.raw_data()),
            adjoint ? static_cast<float*>(acc.raw_data()) : nullptr, P, H, W, OH, OW, adjoint);
    });
    AC_CUDA_LAUNCH_CHECK("resize_bilinear");
    if (adjoint) strided_copy(out, acc.view(out.shape()));
}

void avg_pool2d(const Tensor& x, const Tensor& out, int64_t k, bool adjoint) {
    const Tensor& big = adjoint ? out : x;
    const int64_t P = big.size(0) * big.size(1), H = big.size(2), W = big.size(3);
    const int64_t n = adjoint ? P * H * W : P * (H / k) * (W / k);
    if (n == 0) return;
    dispatch_gpu_float(x.dtype(), "avg_pool2d", [&](auto tag) {
        using T = typename decltype(tag)::type;
        pool_kernel<T><<<grid_for(n, kThreads), kThreads>>>(
            static_cast<const T*>(x.raw_data()), static_cast<T*>(out.raw_data()), P, H, W, k, adjoint);
    });
    AC_CUDA_LAUNCH_CHECK("avg_pool2d");
}

}  // namespace aclip::cuda
