// gemm.h: the CPU matrix product behind matmul and linear.
// C = alpha * op(A) @ op(B) + beta * C, row-major, with leading dimensions. f32 and f64 go to the BLAS
// (OpenBLAS) when the build found one; otherwise to a cache-blocked loop that gives the same results
// up to summation order.
#pragma once
#include <cstdint>
#include <string>

namespace aclip {

template <class T>
void cpu_gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
              const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

// What runs the products, e.g. "OpenBLAS 0.3.21, SkylakeX kernels" (blas_kernels.h), for a run's log.
const std::string& cpu_gemm_kernels();

}  // namespace aclip
