// blas_kernels.h: which of OpenBLAS's kernel sets the CPU matrix products run, and mending a wrong pick.
// OpenBLAS's DYNAMIC_ARCH builds (Debian's) choose their kernels from the CPU model when the library loads.
// A processor newer than the library gets its SSE3 "Prescott" kernels: Debian 12's OpenBLAS 0.3.21 on an
// Emerald Rapids Xeon (family 6, model 207) runs a 1024^2 sgemm 5.4x slower than with its AVX-512 ones.
// Before main, gemm.cpp asks choose_openblas_kernels() to undo such a pick: when OPENBLAS_CORETYPE is unset
// and OpenBLAS chose a core without AVX2 kernels on a CPU that has AVX2 (or AVX-512), it sets
// OPENBLAS_CORETYPE to the best core the CPU's flags allow and re-runs OpenBLAS's own selection. SkylakeX
// serves every AVX-512 CPU: 0.3.21's Cooperlake core differs from it only in bf16 products, which aclip
// does not ask of the BLAS (and 0.3.21 does not find "Cooperlake" by name).
#pragma once
#include <string>

namespace aclip {

struct CpuFeatures {
    bool avx2_fma = false;  // AVX2 and FMA3, with the OS saving the YMM state
    bool avx512 = false;    // AVX-512 F, BW, VL and DQ (SkylakeX's kernels), with the OS saving ZMM
};

CpuFeatures cpu_features();

// The OpenBLAS core to switch to from the one it chose (`chosen`, as openblas_get_corename spells it), or ""
// to keep it: only a core without AVX2 kernels on a CPU with AVX2 is replaced, so a pick OpenBLAS made
// knowingly (Zen, Haswell, SkylakeX, ...) always stands.
std::string better_openblas_core(const std::string& chosen, CpuFeatures cpu);

// Applies the rule above once (OpenBLAS builds only) and describes the outcome, e.g. "OpenBLAS 0.3.21,
// SkylakeX kernels (OpenBLAS took this CPU for Prescott; set OPENBLAS_CORETYPE to choose)".
std::string choose_openblas_kernels();

}  // namespace aclip
