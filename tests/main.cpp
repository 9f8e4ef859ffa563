// main.cpp: the doctest entry point of aclip_tests. Suites are tiers (unit, ops, gradcheck, fixtures,
// nn, optim, io, cuda, ...); ctest runs each as its own test (see tests/CMakeLists.txt).
// --require-gpu: GPU test cases that would be skipped for want of a GPU fail instead (gpu_check.sh).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstring>
#include <iostream>
#include <vector>

#include "tests/gpu_skip.h"

namespace aclip::test {
bool g_require_gpu = false;
int g_gpu_skips = 0;
}  // namespace aclip::test

int main(int argc, char** argv) {
    std::vector<char*> args;
    for (int i = 0; i < argc; ++i) {
        if (std::strcmp(argv[i], "--require-gpu") == 0)
            aclip::test::g_require_gpu = true;
        else
            args.push_back(argv[i]);
    }
    doctest::Context context(static_cast<int>(args.size()), args.data());
    int status = context.run();
    if (aclip::test::g_gpu_skips > 0)
        std::cout << "GPU test cases skipped (no CUDA device): " << aclip::test::g_gpu_skips << "\n";
    return status;
}
