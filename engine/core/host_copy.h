// host_copy.h: a copy to the CPU that overlaps the GPU's work. Tensor::to(Device::CPU) waits for the
// copy and so for everything queued before it; the GPU then idles until the host queues work again.
// HostCopy queues the copy and lets the host queue more before it waits:
//     HostCopy scores(attn);              // (B, N) on the GPU: its copy is queued behind its producers
//     Tensor text = encode(tokens);       // more GPU work, queued behind the copy
//     Tensor host = scores.wait();        // waits for the copy alone; the GPU goes on with the text
// A CPU tensor is simply held. Index faults (engine/cuda/index_fault.cuh) are raised by wait().
#pragma once
#include "engine/core/tensor.h"

namespace aclip {

class HostCopy {
  public:
    explicit HostCopy(const Tensor& x);
    ~HostCopy();
    HostCopy(const HostCopy&) = delete;
    HostCopy& operator=(const HostCopy&) = delete;

    // The tensor on the CPU (contiguous; page-locked memory when it came from the GPU), once copied.
    Tensor wait();

  private:
    Tensor host_;
    // The queued copy (cuda::copy_to_host_queued); null for a CPU tensor, or once waited for.
    void* event_ = nullptr;
};

}  // namespace aclip
