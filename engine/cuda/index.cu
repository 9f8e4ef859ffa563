// index.cu: kernels that move elements by index: index_select (and so embedding and gather_rows) and
// its adjoint index_add (index_add.cuh: in a fixed order, the CPU's), gather and its adjoint scatter_add,
// and a rank-by-counting sort of rows for topk and argsort. Index tensors arrive as contiguous i64,
// unchecked: each kernel checks the indices it uses (index_fault.cuh), so the op need not read them back
// to the host. scatter_add adds with atomics, so its f32 sums may differ in the last bits between runs
// when indices repeat (its use here, the losses' gathers, has none).
#include <cuda_bf16.h>

#include "engine/cuda/cuda_ops.h"
#include "engine/cuda/device_util.cuh"
#include "engine/cuda/index_add.cuh"
#include "engine/cuda/index_fault.cuh"

namespace aclip::cuda {

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ void atomic_add(float* p, float v) {
    atomicAdd(p, v);
}
__device__ __forceinline__ void atomic_add(bf16* p, float v) {
    atomicAdd(reinterpret_cast<__nv_bfloat16*>(p), __float2bfloat16_rn(v));
}

// out (O, L, I) = x at rows index; a row outside [0, S) gives zeros and an index fault.
template <class T>
__global__ void index_select_kernel(const T* x, RowIndex r, T* out, int64_t O, int64_t S, int64_t L,
                                    int64_t I) {
    const int64_t n = O * L * I;
    for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < n;
         p += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t o = p / (L * I), l = (p / I) % L, i = p % I, at = o * r.index_stride + l;
        const int64_t row = r.index[at];
        out[p] = index_in_range(r.fault, r.op, row, S, at) ? x[(o * S + row) * I + i] : T{};
    }
}

// Shape of the index tensor and strides of x, for gather and scatter_add.
struct IndexedLayout {
    int ndim;
    int dim;
    int64_t limit;  // x.size(dim): the range of the index values
    IndexFault* fault;
    const char* op;
    int64_t shape[kMaxDims];
    int64_t strides[kMaxDims];
};

__device__ __forceinline__ int64_t indexed_offset(const IndexedLayout& L, int64_t p, int64_t index_value) {
    int64_t off = 0;
    for (int d = L.ndim - 1; d >= 0; --d) {
        const int64_t c = p % L.shape[d];
        p /= L.shape[d];
        off += (d == L.dim ? index_value : c) * L.strides[d];
    }
    return off;
}

template <class T>
__global__ void gather_kernel(const T* x, const int64_t* index, T* out, IndexedLayout L, int64_t n) {
    for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < n;
         p += static_cast<int64_t>(gridDim.x) * blockDim.x)
        out[p] =
            index_in_range(L.fault, L.op, index[p], L.limit, p) ? x[indexed_offset(L, p, index[p])] : T{};
}

template <class T>
__global__ void scatter_add_kernel(T* x, const int64_t* index, const T* src, IndexedLayout L, int64_t n) {
    for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < n;
         p += static_cast<int64_t>(gridDim.x) * blockDim.x)
        if (index_in_range(L.fault, L.op, index[p], L.limit, p))
            atomic_add(x + indexed_offset(L, p, index[p]), ld(src[p]));
}

// Element j of row r goes to position rank(j) = the number of elements ordered before it (by value,
// ties by index): a stable sort in O(D^2) per row, exact and simple for the short rows it serves
// (patch scores: D <= a few hundred).
template <class T>
__global__ void sort_rows_kernel(const T* x, int64_t* index, int64_t R, int64_t D, int64_t k,
                                 bool descending) {
    const int64_t n = R * D;
    for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < n;
         p += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t r = p / D, j = p % D;
        const T* row = x + r * D;
        const float v = ld(row[j]);
        int64_t rank = 0;
        for (int64_t m = 0; m < D; ++m) {
            const float u = ld(row[m]);
            const bool before = descending ? u > v : u < v;
            rank += before || (u == v && m < j);
        }
        if (rank < k) index[r * k + rank] = j;
    }
}

AC_REGISTER_KERNEL("index_select");
AC_REGISTER_KERNEL("index_add");
AC_REGISTER_KERNEL("gather");
AC_REGISTER_KERNEL("scatter_add");
AC_REGISTER_KERNEL("sort_rows");

IndexedLayout indexed_layout(const Tensor& x, int64_t dim, const Tensor& index, const char* op) {
    AC_CHECK(x.dim() <= kMaxDims, "CUDA ", op, ": at most ", kMaxDims, " dims, got ", x.desc());
    IndexedLayout L{};
    L.ndim = static_cast<int>(index.dim());
    L.dim = static_cast<int>(dim);
    L.limit = x.size(dim);
    L.fault = index_fault_record();
    L.op = op;
    for (int d = 0; d < L.ndim; ++d) {
        L.shape[d] = index.size(d);
        L.strides[d] = x.strides()[d];
    }
    return L;
}

// The rows of index for an (O, S, I) x: L a row, and the kernel's view of them.
RowIndex row_index(const Tensor& index, int64_t O, bool batched, const char* op, int64_t& L) {
    L = batched ? index.numel() / std::max<int64_t>(O, 1) : index.numel();
    return {static_cast<const int64_t*>(index.raw_data()), batched ? L : 0, index_fault_record(), op};
}

}  // namespace

void index_select(const Tensor& x, int64_t O, int64_t S, int64_t I, const Tensor& index, bool batched,
                  const Tensor& out, const char* op) {
    int64_t L = 0;
    const RowIndex r = row_index(index, O, batched, op, L);
    const int64_t n = O * L * I;
    if (n == 0) return;
    dispatch_any(x.dtype(), [&](auto tag) {
        using T = typename decltype(tag)::type;
        index_select_kernel<T><<<grid_for(n, kThreads), kThreads>>>(
            static_cast<const T*>(x.raw_data()), r, static_cast<T*>(out.raw_data()), O, S, L, I);
    });
    AC_CUDA_LAUNCH_CHECK("index_select");
}

void index_add(const Tensor& dst, int64_t O, int64_t S, int64_t I, const Tensor& index, bool batched,
               const Tensor& src, const char* op) {
    using namespace index_add_kernels;
    int64_t L = 0;
    const RowIndex r = row_index(index, O, batched, op, L);
    const int64_t n = O * L, K = O * S;
    if (n * I == 0) return;
    AC_CHECK(n < INT32_MAX && K < INT32_MAX, "CUDA ", op, ": ", n, " rows added into ", K,
             " is over the 2^31 rows the ordered index_add numbers with int");
    Tensor counters = zeros({2 * K}, DType::I32, Device::CUDA);  // count, then filled: one fill for both
    Tensor starts = empty({K}, DType::I32, Device::CUDA), rows = empty({2 * n}, DType::I32, Device::CUDA);
    int *pc = static_cast<int*>(counters.raw_data()), *pf = pc + K,
        *ps = static_cast<int*>(starts.raw_data());
    int *po = static_cast<int*>(rows.raw_data()), *pso = po + n;  // order, sorted
    count_rows<<<grid_for(n, kThreads), kThreads>>>(r, pc, n, L, S);
    scan_counts<<<1, kScanThreads>>>(pc, ps, K);
    place_rows<<<grid_for(n, kThreads), kThreads>>>(r, ps, pf, po, n, L, S);
    order_buckets<<<(n + kTile - 1) / kTile, kTile>>>(r, ps, pc, po, pso, n, L, S);
    dispatch_gpu_float(dst.dtype(), "index_add", [&](auto tag) {
        using T = typename decltype(tag)::type;
        add_buckets<T><<<grid_for(K * I, kThreads), kThreads>>>(
            static_cast<T*>(dst.raw_data()), static_cast<const T*>(src.raw_data()), ps, pc, pso, K, I);
    });
    AC_CUDA_LAUNCH_CHECK("index_add");
}

void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) {
    const int64_t n = index.numel();
    if (n == 0) return;
    IndexedLayout L = indexed_layout(x, dim, index, "gather");
    dispatch_any(x.dtype(), [&](auto tag) {
        using T = typename decltype(tag)::type;
        gather_kernel<T><<<grid_for(n, kThreads), kThreads>>>(static_cast<const T*>(x.raw_data()),
                                                              static_cast<const int64_t*>(index.raw_data()),
                                                              static_cast<T*>(out.raw_data()), L, n);
    });
    AC_CUDA_LAUNCH_CHECK("gather");
}

void scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
    const int64_t n = index.numel();
    if (n == 0) return;
    IndexedLayout L = indexed_layout(x, dim, index, "scatter_add");
    dispatch_gpu_float(x.dtype(), "scatter_add", [&](auto tag) {
        using T = typename decltype(tag)::type;
        scatter_add_kernel<T><<<grid_for(n, kThreads), kThreads>>>(
            static_cast<T*>(x.raw_data()), static_cast<const int64_t*>(index.raw_data()),
            static_cast<const T*>(src.raw_data()), L, n);
    });
    AC_CUDA_LAUNCH_CHECK("scatter_add");
}

void sort_rows(const Tensor& x, bool descending, int64_t k, const Tensor& index) {
    const int64_t D = x.size(-1), R = D ? x.numel() / D : 0;
    if (R * D == 0) return;
    dispatch_gpu_float(x.dtype(), "topk/argsort", [&](auto tag) {
        using T = typename decltype(tag)::type;
        sort_rows_kernel<T><<<grid_for(R * D, kThreads), kThreads>>>(static_cast<const T*>(x.raw_data()),
                                                                     static_cast<int64_t*>(index.raw_data()),
                                                                     R, D, k, descending);
    });
    AC_CUDA_LAUNCH_CHECK("sort_rows");
}

}  // namespace aclip::cuda
