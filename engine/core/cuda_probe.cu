// cuda_probe.cu: built when ACLIP_CUDA is on. Counts devices lazily, on first use and never at static
// initialisation. Any error counts as zero devices: on a machine with the toolkit but no driver,
// cudaGetDeviceCount fails (error 35) and leaves its out-parameter untouched, so it is never read then.
#include <cuda_runtime.h>

#include "engine/core/storage.h"

namespace aclip {

int cuda_device_count() {
    static const int count = [] {
        int n = 0;
        if (cudaGetDeviceCount(&n) != cudaSuccess) {
            cudaGetLastError();  // clear the sticky error so later probes start clean
            return 0;
        }
        return n;
    }();
    return count;
}

bool cuda_backend_built() {
    return true;
}

}  // namespace aclip
