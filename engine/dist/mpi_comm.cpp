// mpi_comm.cpp: the MPI communicator (mpirun -np N), built when CMake finds MPI. Ranks exchange CPU
// tensors with MPI_Allreduce and MPI_Allgather. MPI is initialised on first use and finalised at exit.
#include <mpi.h>

#include <cstdlib>

#include "engine/autograd/grad_mode.h"
#include "engine/dist/comm.h"
#include "engine/ops/ops.h"

namespace aclip {

namespace {

MPI_Datatype mpi_type(DType t) {
    switch (t) {
        case DType::F32:
            return MPI_FLOAT;
        case DType::F64:
            return MPI_DOUBLE;
        case DType::I64:
            return MPI_INT64_T;
        case DType::I32:
            return MPI_INT32_T;
        default:
            AC_FAIL("MpiComm: no MPI type for dtype ", dtype_name(t));
    }
}

void check_mpi(int rc, const char* what) {
    AC_CHECK(rc == MPI_SUCCESS, "MPI: ", what, " failed (code ", rc, ")");
}

class MpiComm : public Comm {
  public:
    MpiComm() {
        int initialized = 0;
        MPI_Initialized(&initialized);
        if (!initialized) {
            check_mpi(MPI_Init(nullptr, nullptr), "MPI_Init");
            std::atexit([] {
                int finalized = 0;
                MPI_Finalized(&finalized);
                if (!finalized) MPI_Finalize();
            });
        }
        MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
        MPI_Comm_size(MPI_COMM_WORLD, &world_);
    }
    int rank() const override { return rank_; }
    int world() const override { return world_; }
    void barrier() override { check_mpi(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }

    void broadcast_bytes(std::string& data, int root) override {
        unsigned long long size = data.size();
        check_mpi(MPI_Bcast(&size, 1, MPI_UNSIGNED_LONG_LONG, root, MPI_COMM_WORLD), "MPI_Bcast");
        data.resize(static_cast<size_t>(size));
        check_mpi(MPI_Bcast(data.data(), static_cast<int>(size), MPI_BYTE, root, MPI_COMM_WORLD),
                  "MPI_Bcast");
    }

    void all_reduce_sum(Tensor& t) override {
        AC_CHECK(t.is_contiguous() && t.device() == Device::CPU,
                 "MpiComm::all_reduce_sum: needs a contiguous CPU "
                 "tensor, got ",
                 t.desc());
        check_mpi(MPI_Allreduce(MPI_IN_PLACE, t.raw_data(), static_cast<int>(t.numel()), mpi_type(t.dtype()),
                                MPI_SUM, MPI_COMM_WORLD),
                  "MPI_Allreduce");
    }

    Tensor all_gather(const Tensor& t) override {
        Tensor src = t.detach().contiguous();
        Shape shape = src.shape();
        shape[0] *= world_;
        Tensor out = empty(shape, src.dtype());
        check_mpi(MPI_Allgather(src.raw_data(), static_cast<int>(src.numel()), mpi_type(src.dtype()),
                                out.raw_data(), static_cast<int>(src.numel()), mpi_type(src.dtype()),
                                MPI_COMM_WORLD),
                  "MPI_Allgather");
        return out;
    }

  private:
    int rank_ = 0, world_ = 1;
};

}  // namespace

bool mpi_available() {
    return true;
}

void abort_mpi_job_if_running(int status) {
    int initialized = 0, finalized = 0, world = 1;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (!initialized || finalized) return;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    if (world > 1) MPI_Abort(MPI_COMM_WORLD, status);
}

std::unique_ptr<Comm> make_mpi_comm() {
    return std::make_unique<MpiComm>();
}

}  // namespace aclip
