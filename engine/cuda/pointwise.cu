// pointwise.cu: the elementwise kernels. One kernel template runs every formula of
// engine/math/pointwise.h: a vectorised path (16-byte loads and stores) when all operands are contiguous
// with the output's shape, and a strided path over up to 8 collapsed dims for broadcasts and views.
// Also here: where, strided copies between any dtypes (contiguous, clone, casts, copy_), fill, and the
// dropout scale drawn from Philox exactly as the CPU draws it.
#include "engine/cuda/cuda_ops.h"
#include "engine/cuda/device_util.cuh"
#include "engine/cuda/pointwise.cuh"
#include "engine/math/philox.h"

namespace aclip::cuda {

namespace {

constexpr int kThreads = 256;

// The kernel's registered name ("pointwise.Add"), for launch errors and the kernel profile.
const char* kernel_name(PW op) {
    switch (op) {
#define AC_PW_KERNEL_NAME(id, name) \
    case PW::id:                    \
        return "pointwise." #id;
        AC_POINTWISE_OPS(AC_PW_KERNEL_NAME)
#undef AC_PW_KERNEL_NAME
    }
    return "pointwise.?";
}

template <PW op, class A, class B>
void launch_typed(double s0, double s1, const Tensor& out, const Tensor& a, const Tensor& b) {
    using C = compute_t<A>;
    using O = std::conditional_t<pointwise_writes_mask(op), uint8_t,
                                 std::conditional_t<sizeof(B) < sizeof(A), A, B>>;
    const int64_t n = out.numel();
    O* po = static_cast<O*>(out.raw_data());
    const A* pa = static_cast<const A*>(a.raw_data());
    const B* pb = static_cast<const B*>(b.raw_data());
    const bool dense = out.is_contiguous() && a.is_contiguous() && b.is_contiguous() &&
                       a.shape() == out.shape() && b.shape() == out.shape();
    if (dense && all_aligned({po, pa, pb}, 16)) {
        const int64_t blocks = grid_for(n / pack_width<A, B>() + 1, kThreads);
        pointwise_vectorized<op, A, B, O><<<blocks, kThreads>>>(po, pa, pb, n, C(s0), C(s1));
    } else {
        Strides so = out.strides();
        Strides sa = broadcast_strides(a.shape(), a.strides(), out.shape());
        Strides sb = broadcast_strides(b.shape(), b.strides(), out.shape());
        const Strides* all[3] = {&so, &sa, &sb};
        CollapsedDims dims = collapse_dims(out.shape(), all, 3);
        pointwise_strided<op, A, B, O>
            <<<grid_for(n, kThreads), kThreads>>>(po, pa, pb, dims, n, C(s0), C(s1));
    }
}

template <PW op>
void launch_pointwise(double s0, double s1, const Tensor& out, const Tensor& a, const Tensor& b) {
    const Tensor& bb = b.defined() ? b : a;  // unary ops read a second operand they ignore
    if (out.numel() == 0) return;
    if constexpr (pointwise_takes_mixed(op)) {
        if (a.dtype() == DType::F32 && bb.dtype() == DType::BF16) {
            launch_typed<op, float, bf16>(s0, s1, out, a, bb);
            AC_CUDA_LAUNCH_CHECK(kernel_name(op));
            return;
        }
        if (a.dtype() == DType::BF16 && bb.dtype() == DType::F32) {
            launch_typed<op, bf16, float>(s0, s1, out, a, bb);
            AC_CUDA_LAUNCH_CHECK(kernel_name(op));
            return;
        }
    }
    dispatch_gpu_float(a.dtype(), pointwise_name(op), [&](auto tag) {
        using T = typename decltype(tag)::type;
        launch_typed<op, T, T>(s0, s1, out, a, bb);
    });
    AC_CUDA_LAUNCH_CHECK(kernel_name(op));
}

#define AC_PW_REGISTER(id, name) AC_REGISTER_KERNEL_NAMED(pointwise_##id, "pointwise." #id);
AC_POINTWISE_OPS(AC_PW_REGISTER)
#undef AC_PW_REGISTER

}  // namespace

void pointwise(PW op, double s0, double s1, const Tensor& out, const Tensor& a, const Tensor& b) {
    switch (op) {
#define AC_PW_CASE(id, name)                         \
    case PW::id:                                     \
        launch_pointwise<PW::id>(s0, s1, out, a, b); \
        return;
        AC_POINTWISE_OPS(AC_PW_CASE)
#undef AC_PW_CASE
    }
}

// ---- where ------------------------------------------------------------------------------------------

namespace {
template <class T>
__global__ void where_kernel(T* out, const uint8_t* mask, const T* a, const T* b, CollapsedDims dims,
                             int64_t n) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const Offsets<4> o = offsets_of<4>(dims, i);
        out[o.at[0]] = mask[o.at[1]] ? a[o.at[2]] : b[o.at[3]];
    }
}
AC_REGISTER_KERNEL("where");
}  // namespace

void where(const Tensor& out, const Tensor& mask, const Tensor& a, const Tensor& b) {
    const int64_t n = out.numel();
    if (n == 0) return;
    dispatch_gpu_float(a.dtype(), "where", [&](auto tag) {
        using T = typename decltype(tag)::type;
        Strides so = out.strides(), sm = broadcast_strides(mask.shape(), mask.strides(), out.shape()),
                sa = broadcast_strides(a.shape(), a.strides(), out.shape()),
                sb = broadcast_strides(b.shape(), b.strides(), out.shape());
        const Strides* all[4] = {&so, &sm, &sa, &sb};
        CollapsedDims dims = collapse_dims(out.shape(), all, 4);
        where_kernel<T><<<grid_for(n, kThreads), kThreads>>>(
            static_cast<T*>(out.raw_data()), static_cast<const uint8_t*>(mask.raw_data()),
            static_cast<const T*>(a.raw_data()), static_cast<const T*>(b.raw_data()), dims, n);
        AC_CUDA_LAUNCH_CHECK("where");
    });
}

// ---- copies, casts and fill ---------------------------------------------------------------------------

namespace {
template <class T>
__global__ void fill_kernel(T* dst, T value, CollapsedDims dims, int64_t n) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        dst[offsets_of<1>(dims, i).at[0]] = value;
}
AC_REGISTER_KERNEL("strided_copy");
AC_REGISTER_KERNEL("fill");
}  // namespace

void strided_copy(const Tensor& dst, const Tensor& src) {
    const int64_t n = dst.numel();
    if (n == 0) return;
    const bool dense = dst.is_contiguous() && src.is_contiguous() && dst.shape() == src.shape();
    if (dense && dst.dtype() == src.dtype()) {
        copy_on_device(dst.raw_data(), src.raw_data(), n * dtype_size(dst.dtype()));
        return;
    }
    const bool aligned = all_aligned({dst.raw_data(), src.raw_data()}, 16), vectorized = dense && aligned;
    CollapsedDims dims{};
    if (!vectorized) {
        Strides sd = dst.strides(), ss = broadcast_strides(src.shape(), src.strides(), dst.shape());
        const Strides* all[2] = {&sd, &ss};
        dims = collapse_dims(dst.shape(), all, 2);
    }
    const char* row = vectorized ? "strided_copy (contiguous cast)" : "strided_copy (element by element)";
    dispatch_any(dst.dtype(), [&](auto dtag) {
        using D = typename decltype(dtag)::type;
        dispatch_any(src.dtype(), [&](auto stag) {
            using S = typename decltype(stag)::type;
            constexpr int V = pack_width<D, S>();
            D* d = static_cast<D*>(dst.raw_data());
            const S* s = static_cast<const S*>(src.raw_data());
            CollapsedDims packs{};
            if (vectorized) {  // a cast between contiguous tensors
                copy_vectorized<D, S><<<grid_for(n / V + 1, kThreads), kThreads>>>(d, s, n);
            } else if (aligned && pack_dims(dims, V, packs)) {  // runs of whole packs (a permute's rows)
                copy_strided_packs<D, S><<<grid_for(n / V, kThreads), kThreads>>>(d, s, packs, n / V);
                row = "strided_copy (in packs)";
            } else {
                copy_strided<D, S><<<grid_for(n, kThreads), kThreads>>>(d, s, dims, n);
            }
        });
    });
    // Three profile rows: casts between contiguous aligned tensors, views moved in packs, the rest
    // (broadcasts, views with odd runs).
    AC_CUDA_LAUNCH_CHECK(row);
}

void fill(const Tensor& t, double value) {
    const int64_t n = t.numel();
    if (n == 0) return;
    Strides s = t.strides();
    const Strides* all[1] = {&s};
    CollapsedDims dims = collapse_dims(t.shape(), all, 1);
    dispatch_any(t.dtype(), [&](auto tag) {
        using T = typename decltype(tag)::type;
        fill_kernel<T>
            <<<grid_for(n, kThreads), kThreads>>>(static_cast<T*>(t.raw_data()), store_as<T>(value), dims, n);
    });
    AC_CUDA_LAUNCH_CHECK("fill");
}

// ---- dropout ------------------------------------------------------------------------------------------

namespace {
template <class T>
__global__ void dropout_scale_kernel(T* out, int64_t n, double p, T kept, uint64_t seed, uint64_t offset) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        out[i] = uniform_from_word(philox_word(seed, offset, i)) >= p ? kept : st<T>(0.0f);
}
AC_REGISTER_KERNEL("dropout_scale");
}  // namespace

void dropout_scale(const Tensor& out, double p, uint64_t seed, uint64_t offset) {
    const int64_t n = out.numel();
    if (n == 0) return;
    dispatch_gpu_float(out.dtype(), "dropout", [&](auto tag) {
        using T = typename decltype(tag)::type;
        dropout_scale_kernel<T><<<grid_for(n, kThreads), kThreads>>>(
            static_cast<T*>(out.raw_data()), n, p, store_as<T>(1.0 / (1.0 - p)), seed, offset);
    });
    AC_CUDA_LAUNCH_CHECK("dropout_scale");
}

}  // namespace aclip::cuda
