// resize.cpp: resampling of 2-D maps (N, C, H, W): bilinear resize with align_corners=False (PyTorch's
// F.interpolate without antialiasing) and average pooling with stride equal to the kernel. The attentive
// mask maps attention scores between crops with these. Each has a forward and an adjoint kernel.
#include <cmath>

#include "engine/autograd/node.h"
#include "engine/cpu/strided_loop.h"
#include "engine/cuda/cuda_ops.h"
#include "engine/math/bilinear.h"
#include "engine/ops/ops.h"

namespace aclip {

namespace {

// For each output coordinate along one axis: the two source indices and the weight of the second.
struct AxisTaps {
    std::vector<int64_t> i0, i1;
    std::vector<double> w1;
};

AxisTaps bilinear_taps(int64_t in, int64_t out) {
    AxisTaps t;
    for (int64_t o = 0; o < out; ++o) {
        const BilinearTap tap = bilinear_tap(o, in, out);
        t.i0.push_back(tap.i0);
        t.i1.push_back(tap.i1);
        t.w1.push_back(tap.w1);
    }
    return t;
}

// forward: dst (P, OH, OW) = resample(src (P, H, W)); adjoint: src_grad (P, H, W) += resample^T(dst_grad).
template <class T>
void bilinear_planes(const T* src, T* dst, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW,
                     bool adjoint) {
    AxisTaps ty = bilinear_taps(H, OH), tx = bilinear_taps(W, OW);
    parallel_for(P, OH * OW * 4, [&](int64_t p) {
        if (adjoint) {  // src is the output gradient (OH, OW); dst the input gradient (H, W)
            const T* g = src + p * OH * OW;
            std::vector<double> acc(H * W, 0.0);
            for (int64_t y = 0; y < OH; ++y)
                for (int64_t x = 0; x < OW; ++x) {
                    double gv = load(g[y * OW + x]), wy = ty.w1[y], wx = tx.w1[x];
                    acc[ty.i0[y] * W + tx.i0[x]] += gv * (1 - wy) * (1 - wx);
                    acc[ty.i0[y] * W + tx.i1[x]] += gv * (1 - wy) * wx;
                    acc[ty.i1[y] * W + tx.i0[x]] += gv * wy * (1 - wx);
                    acc[ty.i1[y] * W + tx.i1[x]] += gv * wy * wx;
                }
            for (int64_t i = 0; i < H * W; ++i) dst[p * H * W + i] = store_as<T>(acc[i]);
            return;
        }
        const T* s = src + p * H * W;
        for (int64_t y = 0; y < OH; ++y)
            for (int64_t x = 0; x < OW; ++x) {
                const double v = bilinear_mix(
                    load(s[ty.i0[y] * W + tx.i0[x]]), load(s[ty.i0[y] * W + tx.i1[x]]),
                    load(s[ty.i1[y] * W + tx.i0[x]]), load(s[ty.i1[y] * W + tx.i1[x]]), ty.w1[y], tx.w1[x]);
                dst[(p * OH + y) * OW + x] = store_as<T>(v);
            }
    });
}

// forward: dst (P, H/k, W/k) = mean of k x k blocks of src (P, H, W); adjoint spreads each gradient / k^2.
template <class T>
void pool_planes(const T* src, T* dst, int64_t P, int64_t H, int64_t W, int64_t k, bool adjoint) {
    const int64_t OH = H / k, OW = W / k;
    const double inv = 1.0 / static_cast<double>(k * k);
    parallel_for(P, H * W, [&](int64_t p) {
        for (int64_t y = 0; y < OH; ++y)
            for (int64_t x = 0; x < OW; ++x) {
                if (adjoint) {
                    T v = store_as<T>(load(src[(p * OH + y) * OW + x]) * inv);
                    for (int64_t dy = 0; dy < k; ++dy)
                        for (int64_t dx = 0; dx < k; ++dx) dst[(p * H + y * k + dy) * W + x * k + dx] = v;
                } else {
                    double s = 0;
                    for (int64_t dy = 0; dy < k; ++dy)
                        for (int64_t dx = 0; dx < k; ++dx)
                            s += load(src[(p * H + y * k + dy) * W + x * k + dx]);
                    dst[(p * OH + y) * OW + x] = store_as<T>(s * inv);
                }
            }
    });
}

void check_maps(const Tensor& x, const char* op) {
    AC_CHECK(x.dim() == 4, op, ": input must be (N, C, H, W), got ", x.desc());
}

}  // namespace

Tensor resize_bilinear(const Tensor& x, int64_t out_h, int64_t out_w) {
    check_maps(x, "resize_bilinear");
    AC_CHECK(out_h > 0 && out_w > 0, "resize_bilinear: output size ", out_h, "x", out_w, " must be positive");
    const int64_t P = x.size(0) * x.size(1), H = x.size(2), W = x.size(3);
    AC_CHECK(H > 0 && W > 0, "resize_bilinear: empty input map ", x.desc());
    Tensor xc = x.contiguous();
    Tensor out = empty({x.size(0), x.size(1), out_h, out_w}, x.dtype(), x.device());
    if (x.device() == Device::CUDA) {
        cuda::resize_bilinear(xc, out, false);
    } else {
        dispatch_float(x.dtype(), "resize_bilinear", [&](auto tag) {
            using T = typename decltype(tag)::type;
            bilinear_planes<T>(xc.data<T>(), out.data<T>(), P, H, W, out_h, out_w, false);
        });
    }
    Shape in_shape = x.shape();
    return record("resize_bilinear", out, {x}, [=](const Tensor& g) {
        Tensor gc = g.contiguous(), gx = empty(in_shape, g.dtype(), g.device());
        if (g.device() == Device::CUDA) {
            cuda::resize_bilinear(gc, gx, true);
            return std::vector<Tensor>{gx};
        }
        dispatch_float(g.dtype(), "resize_bilinear_backward", [&](auto tag) {
            using T = typename decltype(tag)::type;
            bilinear_planes<T>(gc.data<T>(), gx.data<T>(), P, H, W, out_h, out_w, true);
        });
        return std::vector<Tensor>{gx};
    });
}

Tensor avg_pool2d(const Tensor& x, int64_t k) {
    check_maps(x, "avg_pool2d");
    const int64_t P = x.size(0) * x.size(1), H = x.size(2), W = x.size(3);
    AC_CHECK(k >= 1 && H % k == 0 && W % k == 0, "avg_pool2d: kernel ", k, " must divide the map size ", H,
             "x", W, " of ", x.desc());
    Tensor xc = x.contiguous();
    Tensor out = empty({x.size(0), x.size(1), H / k, W / k}, x.dtype(), x.device());
    if (x.device() == Device::CUDA) {
        cuda::avg_pool2d(xc, out, k, false);
    } else {
        dispatch_float(x.dtype(), "avg_pool2d", [&](auto tag) {
            using T = typename decltype(tag)::type;
            pool_planes<T>(xc.data<T>(), out.data<T>(), P, H, W, k, false);
        });
    }
    Shape in_shape = x.shape();
    return record("avg_pool2d", out, {x}, [=](const Tensor& g) {
        Tensor gc = g.contiguous(), gx = empty(in_shape, g.dtype(), g.device());
        if (g.device() == Device::CUDA) {
            cuda::avg_pool2d(gc, gx, k, true);
            return std::vector<Tensor>{gx};
        }
        dispatch_float(g.dtype(), "avg_pool2d_backward", [&](auto tag) {
            using T = typename decltype(tag)::type;
            pool_planes<T>(gc.data<T>(), gx.data<T>(), P, H, W, k, true);
        });
        return std::vector<Tensor>{gx};
    });
}

}  // namespace aclip
