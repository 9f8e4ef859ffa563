// matmul.cu: matrix products through cuBLASLt. f32 runs in true f32 (the debugging path); bf16 inputs
// and outputs accumulate in f32 on the tensor cores. The layout translation is gemm_plan.h; the
// algorithm comes from cuBLASLt's heuristic, with a 32 MiB workspace from the caching allocator.
// Descriptors and the chosen algorithm are cached per plan (shapes, layouts, dtypes, operand alignment,
// epilogue, accumulation): a training step repeats the same few dozen products, and asking the heuristic
// costs tens of microseconds each time. A linear layer's bias is added by the bias epilogue, and its bias
// gradient computed by the bias-gradient epilogue beside the weight gradient (unless
// ACLIP_BIAS_GRADIENT_EPILOGUE=0: then by the caller's column sums); the bias pointer is set on
// the cached descriptor at each call (GPU work is issued from one thread). A residual stream is added as
// cuBLASLt's C (beta 1), written in f32 from bf16 inputs (linear_add).
#include <cublasLt.h>

#include <cstdlib>
#include <mutex>
#include <string>
#include <unordered_map>

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

cublasLtMatrixLayout_t make_layout(cudaDataType_t type, const LtMatrix& m, int64_t batch) {
    cublasLtMatrixLayout_t desc = nullptr;
    AC_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&desc, type, m.rows, m.cols, m.ld));
    int32_t count = static_cast<int32_t>(batch);
    AC_CUBLAS_CHECK(
        cublasLtMatrixLayoutSetAttribute(desc, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count));
    int64_t stride = m.batch_stride;
    AC_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(desc, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                                     &stride, sizeof stride));
    return desc;
}

// What a cached plan depends on.
struct PlanKey {
    cudaDataType_t type, out_type;  // of a and b; of out (and the accumulated C)
    bool ta, tb;
    int64_t m, n, k, batch, lda, ldb, sa, sb;
    uint32_t align_a, align_b, align_c, align_d;
    GemmEpilogue epilogue;
    bool accumulate;  // beta 1: C added
    bool operator==(const PlanKey& o) const {
        return type == o.type && out_type == o.out_type && ta == o.ta && tb == o.tb && m == o.m && n == o.n &&
               k == o.k && batch == o.batch && lda == o.lda && ldb == o.ldb && sa == o.sa && sb == o.sb &&
               align_a == o.align_a && align_b == o.align_b && align_c == o.align_c && align_d == o.align_d &&
               epilogue == o.epilogue && accumulate == o.accumulate;
    }
};
struct PlanKeyHash {
    size_t operator()(const PlanKey& k) const {
        size_t h = static_cast<size_t>(k.type) * 1315423911u + static_cast<size_t>(k.out_type) * 2654435761u +
                   (k.ta ? 2 : 0) + (k.tb ? 1 : 0) + (k.accumulate ? 4 : 0);
        for (int64_t v : {k.m, k.n, k.k, k.batch, k.lda, k.ldb, k.sa, k.sb})
            h ^= std::hash<int64_t>()(v) + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
        return h ^ (static_cast<size_t>(k.align_a) << 1) ^ (static_cast<size_t>(k.align_b) << 10) ^
               (static_cast<size_t>(k.align_d) << 20) ^ (static_cast<size_t>(k.align_c) << 40) ^
               (static_cast<size_t>(k.epilogue) << 30);
    }
};
struct Plan {  // kept for the life of the process
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
    cublasLtMatmulAlgo_t algo{};
    bool found = false;                 // the heuristic had an algorithm
    const char* profile_name = "gemm";  // its kernel profile row (kernel_profile.h)
};

// The cached plan of a key; found is false when cuBLASLt has no algorithm for it.
const Plan& plan_for(const PlanKey& key, const GemmPlan& g) {
    static std::mutex mutex;
    static auto* cache = new std::unordered_map<PlanKey, Plan, PlanKeyHash>();
    std::lock_guard<std::mutex> lock(mutex);
    auto it = cache->find(key);
    if (it != cache->end()) return it->second;
    Plan p;
    AC_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = g.a.transpose ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t tb = g.b.transpose ? CUBLAS_OP_T : CUBLAS_OP_N;
    AC_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    AC_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    if (key.epilogue != GemmEpilogue::None) {
        // Our b is cuBLASLt's A and our a its B (gemm_plan.h): out's columns are D's rows, so the bias of
        // out's rows is BIAS, and the sums over K of our a, one per column of D, are BGRADB.
        const cublasLtEpilogue_t epilogue =
            key.epilogue == GemmEpilogue::Bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_BGRADB;
        AC_CUBLAS_CHECK(
            cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue));
    }
    p.a = make_layout(key.type, g.a, g.batch);
    p.b = make_layout(key.type, g.b, g.batch);
    p.d = make_layout(key.out_type, g.d, g.batch);  // C's too: C and D share a layout
    cublasLtMatmulPreference_t pref = nullptr;
    AC_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    size_t ws = kWorkspaceBytes;
    AC_CUBLAS_CHECK(
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    const std::pair<cublasLtMatmulPreferenceAttributes_t, uint32_t> aligns[] = {
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key.align_a},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key.align_b},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key.align_c},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key.align_d}};
    for (const auto& [attr, value] : aligns)
        AC_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &value, sizeof value));
    cublasLtMatmulHeuristicResult_t heuristic{};
    int found = 0;
    // NOT_SUPPORTED is the heuristic's answer for a configuration it has no algorithm for (an epilogue
    // or a C on small, unaligned matrices, run 6): no algorithm, as a count of 0 is.
    const cublasStatus_t status =
        cublasLtMatmulAlgoGetHeuristic(lt().handle, p.op, p.a, p.b, p.d, p.d, pref, 1, &heuristic, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (status != CUBLAS_STATUS_NOT_SUPPORTED) AC_CUBLAS_CHECK(status);
    p.found = status == CUBLAS_STATUS_SUCCESS && found > 0;
    p.algo = heuristic.algo;
    const bool bf16 = key.type == CUDA_R_16BF, batched = key.batch > 1;
    const bool bias_gradient = key.epilogue == GemmEpilogue::BiasGradient;
    p.profile_name =
        key.accumulate
            ? (bf16 ? "gemm (bf16, added into the residual)" : "gemm (f32, added into the residual)")
        : bias_gradient
            ? (bf16 ? "gemm (bf16, with the bias gradient)" : "gemm (f32, with the bias gradient)")
        : bf16 ? (batched ? "gemm (bf16, batched)" : "gemm (bf16)")
               : (batched ? "gemm (f32, batched)" : "gemm (f32)");
    return cache->emplace(key, p).first->second;
}

// out = a b (+ accumulate) (+ the epilogue's bias), with cuBLASLt's operands swapped (gemm_plan.h).
void run(const Plan& p, const GemmOperand& a, const GemmOperand& b, const Tensor& out,
         const Tensor& accumulate) {
    const float alpha = 1.0f, beta = accumulate.defined() ? 1.0f : 0.0f;
    const void* c = accumulate.defined() ? accumulate.raw_data() : out.raw_data();
    AC_CUBLAS_CHECK(cublasLtMatmul(lt().handle, p.op, &alpha, b.t->raw_data(), p.a, a.t->raw_data(), p.b,
                                   &beta, c, p.d, out.raw_data(), p.d, &p.algo, lt().workspace,
                                   kWorkspaceBytes, 0));
    profile_point(p.profile_name);
}

AC_REGISTER_KERNEL("gemm");

}  // namespace

bool bias_gradient_epilogue() {
    const char* v = std::getenv("ACLIP_BIAS_GRADIENT_EPILOGUE");  // read each time: tests turn it off and on
    return !(v && std::string(v) == "0");
}

bool gemm(const GemmOperand& a, const GemmOperand& b, const Tensor& out, int64_t batch, int64_t M, int64_t N,
          int64_t K, const Tensor& bias, GemmEpilogue epilogue, const Tensor& accumulate) {
    if (batch * M * N == 0) return false;
    if (accumulate.defined())
        AC_CHECK(batch == 1 && accumulate.dtype() == out.dtype() && accumulate.is_contiguous() &&
                     accumulate.numel() == M * N,
                 "matmul: the accumulated matrix must be a contiguous (", M, ", ", N,
                 ") of the output's dtype", " with batch 1, got ", accumulate.desc(), " with batch ", batch);
    if (K == 0) {
        if (accumulate.defined())
            copy_on_device(out.raw_data(), accumulate.raw_data(),
                           static_cast<size_t>(out.numel()) * dtype_size(out.dtype()));
        else
            fill(out, 0.0);
        return false;
    }
    const DType in = a.t->dtype(), dt = out.dtype();
    AC_CHECK((in == DType::F32 || in == DType::BF16) && (dt == in || dt == DType::F32),
             "matmul: CUDA products take f32 or bf16 inputs with an output of their dtype or f32, got ",
             a.t->desc(), " into ", out.desc());
    auto type_of = [](DType d) { return d == DType::F32 ? CUDA_R_32F : CUDA_R_16BF; };
    GemmPlan plan =
        plan_gemm({a.trans, a.ld, a.batch_stride}, {b.trans, b.ld, b.batch_stride}, batch, M, N, K);
    // cuBLASLt's A is our b, its B our a (gemm_plan.h).
    const PlanKey key{type_of(in),
                      type_of(dt),
                      plan.a.transpose,
                      plan.b.transpose,
                      M,
                      N,
                      K,
                      batch,
                      a.ld,
                      b.ld,
                      a.batch_stride,
                      b.batch_stride,
                      address_alignment(b.t->raw_data()),
                      address_alignment(a.t->raw_data()),
                      address_alignment((accumulate.defined() ? accumulate : out).raw_data()),
                      address_alignment(out.raw_data()),
                      GemmEpilogue::None,
                      accumulate.defined()};
    if (bias.defined() && epilogue != GemmEpilogue::None &&
        (epilogue != GemmEpilogue::BiasGradient || bias_gradient_epilogue())) {
        const int64_t length = epilogue == GemmEpilogue::Bias ? N : M;
        AC_CHECK(batch == 1 && bias.dtype() == dt && bias.numel() == length && bias.is_contiguous(),
                 "matmul: the ", epilogue == GemmEpilogue::Bias ? "bias" : "bias-gradient",
                 " epilogue takes a contiguous (", length, ") bias of the output's dtype and batch 1, got ",
                 bias.desc(), " with batch ", batch);
        PlanKey with_bias = key;
        with_bias.epilogue = epilogue;
        const Plan* p = address_alignment(bias.raw_data()) >= 16 ? &plan_for(with_bias, plan) : nullptr;
        if (p && p->found) {
            const void* pointer = bias.raw_data();
            AC_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &pointer,
                                                           sizeof pointer));
            run(*p, a, b, out, accumulate);
            return true;
        }
    }
    const Plan* p = &plan_for(key, plan);
    const bool add_after = !p->found && key.accumulate;  // no algorithm adding C: the product, then an add
    if (add_after) {
        PlanKey plain = key;
        plain.accumulate = false;
        plain.align_c = plain.align_d;
        p = &plan_for(plain, plan);
    }
    AC_CHECK(p->found, "matmul: cuBLASLt has no algorithm for M ", M, ", N ", N, ", K ", K, ", batch ",
             batch);
    run(*p, a, b, out, add_after ? Tensor() : accumulate);
    if (add_after) pointwise(PW::Add, 0.0, 0.0, out, out, accumulate);
    return false;
}

}  // namespace aclip::cuda
