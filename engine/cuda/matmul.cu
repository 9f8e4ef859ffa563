// matmul.cu: matrix products through cuBLASLt. f32 runs in true f32 (the debugging path); bf16 inputs
// and outputs accumulate in f32 on the tensor cores. The layout translation is gemm_plan.h; the
// algorithm comes from cuBLASLt's heuristic, with a 32 MiB workspace from the caching allocator.
#include <cublasLt.h>

#include "engine/cuda/cuda_ops.h"
#include "engine/cuda/device_util.cuh"
#include "engine/cuda/gemm_plan.h"

namespace aclip::cuda {

namespace {

// cuBLASLt's status names (cublasGetStatusString lives in libcublas, which is not linked).
const char* status_name(cublasStatus_t s) {
    switch (s) {
        case CUBLAS_STATUS_NOT_INITIALIZED:
            return "CUBLAS_STATUS_NOT_INITIALIZED";
        case CUBLAS_STATUS_ALLOC_FAILED:
            return "CUBLAS_STATUS_ALLOC_FAILED";
        case CUBLAS_STATUS_INVALID_VALUE:
            return "CUBLAS_STATUS_INVALID_VALUE";
        case CUBLAS_STATUS_ARCH_MISMATCH:
            return "CUBLAS_STATUS_ARCH_MISMATCH";
        case CUBLAS_STATUS_EXECUTION_FAILED:
            return "CUBLAS_STATUS_EXECUTION_FAILED";
        case CUBLAS_STATUS_NOT_SUPPORTED:
            return "CUBLAS_STATUS_NOT_SUPPORTED";
        default:
            return "cuBLAS error";
    }
}

#define AC_CUBLAS_CHECK(call)                                                                              \
    do {                                                                                                   \
        cublasStatus_t ac_status_ = (call);                                                                \
        if (ac_status_ != CUBLAS_STATUS_SUCCESS)                                                           \
            ::aclip::throw_error(                                                                          \
                __FILE__, __LINE__,                                                                        \
                ::aclip::str_cat(#call, " failed: ", status_name(ac_status_), " (", int(ac_status_), ")"), \
                "check the shapes and dtypes passed to matmul");                                           \
    } while (0)

constexpr size_t kWorkspaceBytes = 32u << 20;

struct Lt {
    cublasLtHandle_t handle = nullptr;
    void* workspace = nullptr;
    Lt() {
        AC_CUBLAS_CHECK(cublasLtCreate(&handle));
        workspace = allocate(kWorkspaceBytes);
    }
};

Lt& lt() {
    static Lt* instance = new Lt();  // never destroyed: lives as long as the process
    return *instance;
}

// A cuBLASLt matrix layout, destroyed on scope exit.
struct Layout {
    cublasLtMatrixLayout_t desc = nullptr;
    Layout(cudaDataType_t type, const LtMatrix& m, int64_t batch) {
        AC_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&desc, type, m.rows, m.cols, m.ld));
        int32_t count = static_cast<int32_t>(batch);
        AC_CUBLAS_CHECK(
            cublasLtMatrixLayoutSetAttribute(desc, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count));
        int64_t stride = m.batch_stride;
        AC_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(desc, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                                         &stride, sizeof stride));
    }
    ~Layout() { cublasLtMatrixLayoutDestroy(desc); }
};

AC_REGISTER_KERNEL("gemm");

}  // namespace

void gemm(const GemmOperand& a, const GemmOperand& b, const Tensor& out, int64_t batch, int64_t M, int64_t N,
          int64_t K) {
    if (batch * M * N == 0) return;
    if (K == 0) {
        fill(out, 0.0);
        return;
    }
    const DType dt = out.dtype();
    AC_CHECK(dt == DType::F32 || dt == DType::BF16, "matmul: CUDA products take f32 or bf16, got ",
             out.desc());
    const cudaDataType_t type = dt == DType::F32 ? CUDA_R_32F : CUDA_R_16BF;
    GemmPlan plan =
        plan_gemm({a.trans, a.ld, a.batch_stride}, {b.trans, b.ld, b.batch_stride}, batch, M, N, K);

    cublasLtMatmulDesc_t op_desc = nullptr;
    AC_CUBLAS_CHECK(cublasLtMatmulDescCreate(&op_desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = plan.a.transpose ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t tb = plan.b.transpose ? CUBLAS_OP_T : CUBLAS_OP_N;
    AC_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op_desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    AC_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op_desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    Layout la(type, plan.a, batch), lb(type, plan.b, batch), ld(type, plan.d, batch);

    cublasLtMatmulPreference_t pref = nullptr;
    AC_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    size_t ws = kWorkspaceBytes;
    AC_CUBLAS_CHECK(
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    cublasLtMatmulHeuristicResult_t heuristic{};
    int found = 0;
    AC_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(lt().handle, op_desc, la.desc, lb.desc, ld.desc, ld.desc,
                                                   pref, 1, &heuristic, &found));
    cublasLtMatmulPreferenceDestroy(pref);
    AC_CHECK(found > 0, "matmul: cuBLASLt has no algorithm for ", out.desc(), " (M ", M, ", N ", N, ", K ", K,
             ")");
    const float alpha = 1.0f, beta = 0.0f;
    AC_CUBLAS_CHECK(cublasLtMatmul(lt().handle, op_desc, &alpha, b.t->raw_data(), la.desc, a.t->raw_data(),
                                   lb.desc, &beta, out.raw_data(), ld.desc, out.raw_data(), ld.desc,
                                   &heuristic.algo, lt().workspace, kWorkspaceBytes, 0));
    cublasLtMatmulDescDestroy(op_desc);
}

}  // namespace aclip::cuda
