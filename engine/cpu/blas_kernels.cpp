// blas_kernels.cpp: see blas_kernels.h.
#include "engine/cpu/blas_kernels.h"

#include <cstdlib>

#ifdef ACLIP_HAVE_BLAS
#include <cblas.h>
#endif

// OpenBLAS's core selection, exported by its DYNAMIC_ARCH builds: quit forgets the chosen kernel table,
// init chooses again (OPENBLAS_CORETYPE first, then the CPU model) and sets the table's blocking sizes.
// Weak, so a build without DYNAMIC_ARCH still links and keeps its one kernel set.
extern "C" void gotoblas_dynamic_init(void) __attribute__((weak));
extern "C" void gotoblas_dynamic_quit(void) __attribute__((weak));

namespace aclip {

CpuFeatures cpu_features() {
    CpuFeatures f;
#if defined(__x86_64__)
    __builtin_cpu_init();  // libgcc's checks include the OS's XSAVE support for the wider registers
    f.avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    f.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#endif
    return f;
}

std::string better_openblas_core(const std::string& chosen, CpuFeatures cpu) {
    // OpenBLAS 0.3.21's x86-64 cores with AVX2 kernels; any other pick on an AVX2 CPU is a fallback.
    for (const char* name : {"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids", "Excavator"})
        if (chosen == name) return "";
    if (cpu.avx512) return "SkylakeX";
    if (cpu.avx2_fma) return "Haswell";
    return "";
}

std::string choose_openblas_kernels() {
#if defined(ACLIP_HAVE_BLAS) && defined(OPENBLAS_VERSION)
    std::string version = OPENBLAS_VERSION;  // " OpenBLAS 0.3.21 "
    version = version.substr(version.find_first_not_of(' '));
    version.erase(version.find_last_not_of(' ') + 1);
    const std::string chosen = openblas_get_corename();
    if (std::getenv("OPENBLAS_CORETYPE"))
        return version + ", " + chosen + " kernels (as OPENBLAS_CORETYPE asks)";
    const std::string better = better_openblas_core(chosen, cpu_features());
    if (better.empty() || !gotoblas_dynamic_init || !gotoblas_dynamic_quit)
        return version + ", " + chosen + " kernels";
    // Before any BLAS call and any thread, so nothing reads the environment or the kernel table meanwhile.
    setenv("OPENBLAS_CORETYPE", better.c_str(), 0);
    gotoblas_dynamic_quit();
    gotoblas_dynamic_init();
    return version + ", " + openblas_get_corename() + " kernels (OpenBLAS took this CPU for " + chosen +
           "; set OPENBLAS_CORETYPE to choose)";
#elif defined(ACLIP_HAVE_BLAS)
    return "a BLAS";
#else
    return "aclip's own loop (no BLAS in this build)";
#endif
}

}  // namespace aclip
