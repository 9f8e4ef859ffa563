// host_copy.cpp: see host_copy.h.
#include "engine/core/host_copy.h"

#include "engine/cuda/cuda_ops.h"

namespace aclip {

HostCopy::HostCopy(const Tensor& x) {
    if (x.device() == Device::CPU) {
        host_ = x.detach().contiguous();
        return;
    }
    const Tensor src = x.detach().contiguous();
    host_ = empty_pinned(src.shape(), src.dtype());
    event_ = cuda::copy_to_host_queued(host_.raw_data(), src.raw_data(),
                                       static_cast<size_t>(src.numel()) * dtype_size(src.dtype()));
}

HostCopy::~HostCopy() {
    if (event_) cuda::release_copy(event_);  // never waited for: host_'s memory waits for the copy itself
}

Tensor HostCopy::wait() {
    if (event_) {
        void* e = event_;
        event_ = nullptr;
        cuda::wait_for_copy(e);
    }
    return host_;
}

}  // namespace aclip
