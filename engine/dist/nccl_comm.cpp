// nccl_comm.cpp: the communicator between GPUs, over NCCL. Built when CMake finds NCCL beside the CUDA
// toolkit. Collectives run on the default stream, in order with the kernels that made their inputs; a
// barrier also waits for the device. CPU tensors (the trainer's data cursors and stop flags) go to the
// GPU and back.
#include <nccl.h>

#include <cstring>
#include <exception>

#include "engine/core/storage.h"
#include "engine/cuda/cuda_ops.h"
#include "engine/dist/comm.h"

namespace aclip {

namespace {

#define AC_NCCL_CHECK(call)                                                                            \
    do {                                                                                               \
        ncclResult_t ac_res_ = (call);                                                                 \
        if (ac_res_ != ncclSuccess)                                                                    \
            ::aclip::throw_error(                                                                      \
                __FILE__, __LINE__, ::aclip::str_cat(#call, " failed: ", ncclGetErrorString(ac_res_)), \
                "NCCL_DEBUG=INFO shows what NCCL tried; every rank must run the same collectives");    \
    } while (0)

ncclDataType_t nccl_type(DType t) {
    switch (t) {
        case DType::F32:
            return ncclFloat32;
        case DType::F64:
            return ncclFloat64;
        case DType::BF16:
            return ncclBfloat16;
        case DType::I32:
            return ncclInt32;
        case DType::I64:
            return ncclInt64;
        case DType::U8:
            return ncclUint8;
    }
    AC_FAIL("NcclComm: unknown dtype");
}

class NcclComm : public Comm {
  public:
    NcclComm(int rank, int world, const std::string& id_bytes, std::unique_ptr<PeerWatch> watch)
        : rank_(rank), world_(world), watch_(std::move(watch)) {
        ncclUniqueId id;
        AC_CHECK(id_bytes.size() == sizeof id.internal, "NcclComm: a unique id of ", id_bytes.size(),
                 " bytes; NCCL's has ", sizeof id.internal);
        std::memcpy(id.internal, id_bytes.data(), sizeof id.internal);
        AC_NCCL_CHECK(ncclCommInitRank(&comm_, world, id, rank));
    }
    // Unwinding after an error, a collective may be pending that the other ranks will never join:
    // ncclCommDestroy would wait for it for ever, before the error is printed (or MPI_Abort called).
    ~NcclComm() override {
        if (std::uncaught_exceptions() > 0)
            ncclCommAbort(comm_);
        else
            ncclCommDestroy(comm_);
    }
    int rank() const override { return rank_; }
    int world() const override { return world_; }

    void all_reduce_sum(Tensor& t) override {
        if (t.device() != Device::CUDA) {  // through the GPU
            Tensor g = t.detach().to(Device::CUDA);
            all_reduce_sum(g);
            t.copy_(g);
            return;
        }
        AC_CHECK(t.is_contiguous(), "NcclComm::all_reduce_sum: needs a contiguous tensor, got ", t.desc());
        AC_NCCL_CHECK(ncclAllReduce(t.raw_data(), t.raw_data(), static_cast<size_t>(t.numel()),
                                    nccl_type(t.dtype()), ncclSum, comm_, nullptr));
    }

    Tensor all_gather(const Tensor& t) override {
        if (t.device() != Device::CUDA) return all_gather(t.detach().to(Device::CUDA)).to(Device::CPU);
        Tensor src = t.detach().contiguous();
        Shape shape = src.shape();
        shape[0] *= world_;
        Tensor out = empty(shape, src.dtype(), Device::CUDA);
        AC_NCCL_CHECK(ncclAllGather(src.raw_data(), out.raw_data(), static_cast<size_t>(src.numel()),
                                    nccl_type(src.dtype()), comm_, nullptr));
        return out;
    }

    void barrier() override {
        Tensor one = ones({1}, DType::F32, Device::CUDA);
        all_reduce_sum(one);
        cuda::synchronize();
    }

    void broadcast_bytes(std::string& data, int root) override {
        Tensor size = full({1}, static_cast<double>(data.size()), DType::I64, Device::CUDA);
        AC_NCCL_CHECK(ncclBroadcast(size.raw_data(), size.raw_data(), 1, ncclInt64, root, comm_, nullptr));
        const auto n = static_cast<int64_t>(size.item());
        Tensor buf = empty({n}, DType::U8, Device::CUDA);
        if (rank_ == root && n > 0)
            cuda::copy_to_device(buf.raw_data(), data.data(), static_cast<size_t>(n), false);
        AC_NCCL_CHECK(ncclBroadcast(buf.raw_data(), buf.raw_data(), static_cast<size_t>(n), ncclUint8, root,
                                    comm_, nullptr));
        data.resize(static_cast<size_t>(n));
        if (n > 0) cuda::copy_to_host(data.data(), buf.raw_data(), static_cast<size_t>(n));
    }

  private:
    int rank_, world_;
    std::unique_ptr<PeerWatch> watch_;  // ends this process when another rank ends early (torchrun-style)
    ncclComm_t comm_ = nullptr;
};

}  // namespace

bool nccl_available() {
    return true;
}

std::string nccl_unique_id() {
    ncclUniqueId id;
    AC_NCCL_CHECK(ncclGetUniqueId(&id));
    return std::string(id.internal, sizeof id.internal);
}

std::unique_ptr<Comm> make_nccl_comm(int rank, int world, int local_rank, const std::string& unique_id,
                                     std::unique_ptr<PeerWatch> watch) {
    const int devices = cuda_device_count();
    AC_CHECK_HINT(devices > 0, "run on a machine with NVIDIA GPUs", "NCCL communicator: no CUDA device");
    cuda::set_device(local_rank % devices);
    return std::make_unique<NcclComm>(rank, world, unique_id, std::move(watch));
}

}  // namespace aclip
