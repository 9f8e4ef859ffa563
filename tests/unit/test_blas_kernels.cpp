// test_blas_kernels.cpp: the rule that mends OpenBLAS's kernel pick on processors newer than the library
// (engine/cpu/blas_kernels.h), and that the products run on what the rule chose.
#include <cstdlib>
#include <string>

#include "engine/cpu/blas_kernels.h"
#include "engine/cpu/gemm.h"
#include "test_util.h"

using namespace aclip;

TEST_SUITE("unit") {
    TEST_CASE(
        "blas kernels: a fallback core on an AVX2 or AVX-512 CPU is replaced by the best its flags allow") {
        const CpuFeatures none{}, avx2{true, false}, avx512{true, true};
        CHECK(better_openblas_core("Prescott", avx512) == "SkylakeX");
        CHECK(better_openblas_core("Nehalem", avx2) == "Haswell");
        CHECK(better_openblas_core("Sandybridge", avx2) == "Haswell");  // AVX without AVX2: a fallback here
        CHECK(better_openblas_core("Prescott", none) == "");            // an SSE3 machine keeps SSE3 kernels
    }

    TEST_CASE("blas kernels: a core with AVX2 kernels is OpenBLAS's knowing pick and stands") {
        const CpuFeatures avx512{true, true};
        for (const char* core : {"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids", "Excavator"})
            CHECK(better_openblas_core(core, avx512) == "");
    }

    TEST_CASE("blas kernels: the log line names what the products run on") {
        const std::string& kernels = cpu_gemm_kernels();
        CHECK(!kernels.empty());
        if (kernels.rfind("OpenBLAS", 0) != 0) return;  // a build without OpenBLAS
        // Unless OPENBLAS_CORETYPE says otherwise, an AVX2 CPU never runs a fallback core's kernels.
        const CpuFeatures cpu = cpu_features();
        const bool asked = kernels.find("as OPENBLAS_CORETYPE asks") != std::string::npos;
        if (cpu.avx2_fma && !asked) {
            const std::string core = kernels.substr(kernels.find(", ") + 2);
            INFO(kernels);
            CHECK(better_openblas_core(core.substr(0, core.find(' ')), cpu) == "");
        }
    }
}
