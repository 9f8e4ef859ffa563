// main.cpp: the doctest entry point of aclip_tests. Suites are tiers (unit, ops, gradcheck, fixtures,
// nn, optim, io); ctest runs each as its own test (see tests/CMakeLists.txt).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

int main(int argc, char** argv) {
    doctest::Context context(argc, argv);
    return context.run();
}
