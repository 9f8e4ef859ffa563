// gemm_plan.h: how a row-major batched product out = a @ b is described to cuBLASLt, which is
// column-major. A row-major (rows, cols) matrix with leading dim ld is the column-major (cols, rows)
// matrix with the same ld, so out^T = b^T a^T is computed: cuBLASLt's A is our b, its B is our a, and
// no data moves. Plain C++ so the unit tests can execute a plan with a reference loop on the CPU.
#pragma once
#include <cstdint>

namespace aclip::cuda {

// One operand as stored: (rows, cols) row-major with leading dim ld, or transposed (column-major).
struct RowMajorOperand {
    bool trans = false;
    int64_t ld = 0;
    int64_t batch_stride = 0;  // elements between consecutive matrices; 0 broadcasts one matrix
};

// cuBLASLt's view of one matrix: a column-major (rows, cols) layout, and whether the product uses it
// transposed.
struct LtMatrix {
    int64_t rows = 0, cols = 0, ld = 0, batch_stride = 0;
    bool transpose = false;
};

// d (m, n) = op(a) (m, k) @ op(b) (k, n), all column-major, `batch` times.
struct GemmPlan {
    LtMatrix a, b, d;
    int64_t m = 0, n = 0, k = 0, batch = 1;
};

// out (batch, M, N) contiguous row-major = a (M, K) @ b (K, N).
inline GemmPlan plan_gemm(const RowMajorOperand& a, const RowMajorOperand& b, int64_t batch, int64_t M,
                          int64_t N, int64_t K) {
    GemmPlan p;
    p.m = N;
    p.n = M;
    p.k = K;
    p.batch = batch;
    // cuBLASLt A = our b seen column-major: (N, K) when b is row-major, else stored (K, N) and transposed.
    p.a = b.trans ? LtMatrix{K, N, b.ld, b.batch_stride, true} : LtMatrix{N, K, b.ld, b.batch_stride, false};
    // cuBLASLt B = our a: (K, M) when a is row-major, else stored (M, K) and transposed.
    p.b = a.trans ? LtMatrix{M, K, a.ld, a.batch_stride, true} : LtMatrix{K, M, a.ld, a.batch_stride, false};
    p.d = LtMatrix{N, M, N, M * N, false};
    return p;
}

// The largest power of two up to 256 that divides an address: cuBLASLt picks algorithms by the operands'
// alignment, so it is part of a plan's identity.
inline uint32_t address_alignment(const void* p) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
    uint32_t align = 256;
    while (align > 1 && a % align != 0) align /= 2;
    return align;
}

}  // namespace aclip::cuda
