// host_device.h: AC_HD marks scalar maths that CPU kernels and CUDA kernels share, so the CPU tests
// cover the numerics of the GPU code (engine-guide 8.10, item 3).
#pragma once
#if defined(__CUDACC__)
#define AC_HD __host__ __device__ __forceinline__
#else
// Always inlined, as CUDA's __forceinline__: a vector loop over such a formula (GELU's erf in map.h's
// loops) vectorises only when the formula is inlined into it, whatever GCC's size budget says.
#define AC_HD inline __attribute__((always_inline))
#endif
