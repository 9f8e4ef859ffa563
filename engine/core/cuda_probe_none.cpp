// cuda_probe_none.cpp: built when ACLIP_CUDA is off: there is no CUDA backend and no device.
#include "engine/core/storage.h"

namespace aclip {
int cuda_device_count() {
    return 0;
}
bool cuda_backend_built() {
    return false;
}
}  // namespace aclip
