// gemm.cpp: see gemm.h.
#include "engine/cpu/gemm.h"

#include <algorithm>
#include <string>
#include <vector>

#include "engine/cpu/blas_kernels.h"

#ifdef ACLIP_HAVE_BLAS
#include <cblas.h>
#endif

namespace aclip {

namespace {

// Fallback: C = alpha op(A) op(B) + beta C, i-k-j order over a copied, untransposed B panel.
template <class T>
void reference_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                    const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
    std::vector<T> b(K * N);  // (K, N) row-major
    for (int64_t k = 0; k < K; ++k)
        for (int64_t n = 0; n < N; ++n) b[k * N + n] = tb ? B[n * ldb + k] : B[k * ldb + n];
#pragma omp parallel for schedule(static) if (M * N * K > (1 << 16))
    for (int64_t m = 0; m < M; ++m) {
        std::vector<T> row(N, T(0));
        for (int64_t k = 0; k < K; ++k) {
            T a = ta ? A[k * lda + m] : A[m * lda + k];
            const T* bk = b.data() + k * N;
            for (int64_t n = 0; n < N; ++n) row[n] += a * bk[n];
        }
        T* c = C + m * ldc;
        for (int64_t n = 0; n < N; ++n) c[n] = alpha * row[n] + (beta == T(0) ? T(0) : beta * c[n]);
    }
}

}  // namespace

template <>
void cpu_gemm<float>(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                     int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
    if (M == 0 || N == 0) return;
#ifdef ACLIP_HAVE_BLAS
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha,
                A, lda, B, ldb, beta, C, ldc);
#else
    reference_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

template <>
void cpu_gemm<double>(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
                      int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
    if (M == 0 || N == 0) return;
#ifdef ACLIP_HAVE_BLAS
    cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha,
                A, lda, B, ldb, beta, C, ldc);
#else
    reference_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

namespace {
// Chosen during static initialisation: after the shared libraries' constructors (OpenBLAS's first pick
// among them) and before main, so every product runs on the kernels chosen here.
const std::string g_cpu_gemm_kernels = choose_openblas_kernels();
}  // namespace

const std::string& cpu_gemm_kernels() {
    return g_cpu_gemm_kernels;
}

}  // namespace aclip
