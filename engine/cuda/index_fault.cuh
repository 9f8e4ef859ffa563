// index_fault.cuh: index checks inside CUDA kernels. The CPU ops check every index before they use it;
// on the GPU that would read each index tensor back, a synchronisation per op (the host waits, then the
// GPU waits for the host's next launch). Instead a kernel that meets an index outside its range skips
// that element and records the first such index in one device-wide IndexFault; the host reads the record
// at its next synchronisation (a copy to the host, synchronize()) and throws there, naming the op, the
// index, its position and the range. So a bad index is still a clear error, raised a little later than
// on the CPU, never an out-of-bounds access that would end the CUDA context.
#pragma once
#include <cstdint>

#if !defined(__CUDACC__)
#include <atomic>
#endif

namespace aclip::cuda {

struct IndexFault {
    unsigned long long op;  // 0: no fault; else the address of the op's name, a string literal on the host
    long long index, limit, position;
};

// Claims the record for the first fault; the claimant alone writes the rest.
__device__ __forceinline__ bool claim_fault(IndexFault* fault, unsigned long long op) {
#if defined(__CUDACC__)
    return atomicCAS(&fault->op, 0ull, op) == 0ull;
#else  // emulated threads (warp_emulation.h)
    unsigned long long expected = 0;
    return std::atomic_ref<unsigned long long>(fault->op).compare_exchange_strong(expected, op);
#endif
}

// True when 0 <= index < limit; otherwise records (op, index, limit, position) if no fault is recorded yet.
// op must be a string literal of the host, passed to the kernel as an argument (a literal written in
// device code has a device address): its address travels through the device and back.
__device__ __forceinline__ bool index_in_range(IndexFault* fault, const char* op, int64_t index,
                                               int64_t limit, int64_t position) {
    if (index >= 0 && index < limit) return true;
    if (claim_fault(fault, reinterpret_cast<unsigned long long>(op))) {
        fault->index = index;
        fault->limit = limit;
        fault->position = position;
    }
    return false;
}

// Host side (device.cu). The record a kernel checking indices writes to; taking it marks that the next
// synchronisation must read it back.
IndexFault* index_fault_record();
// Reads the record if a checking kernel ran since the last read; throws aclip::Error for a fault (clearing
// it, so the process can go on). Called after every synchronisation.
void raise_index_fault();

}  // namespace aclip::cuda
