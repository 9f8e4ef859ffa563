// comm.h: the communicator between data-parallel ranks, and the collective ops built on it.
// Comm is the small interface the trainer needs: rank, world size, a sum all-reduce, an all-gather, a
// barrier, and a broadcast of bytes (how NCCL's unique id reaches every rank). LocalComm is the world of one.
// ThreadComm runs N ranks as threads of one process, so the data-parallel logic (gradient averaging, the
// contrastive losses' gather with gradient) is tested on any CPU; the MPI and NCCL communicators of the
// trainer implement the same interface.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/core/tensor.h"
#include "engine/dist/peer_watch.h"

namespace aclip {

class Comm {
  public:
    virtual ~Comm() = default;
    virtual int rank() const = 0;
    virtual int world() const = 0;
    virtual void all_reduce_sum(Tensor& t) = 0;      // in place, over every rank
    virtual Tensor all_gather(const Tensor& t) = 0;  // every rank's t concatenated along dim 0, rank order
    virtual void barrier() = 0;
    virtual void broadcast_bytes(std::string& data, int root) = 0;  // data of root replaces everyone's
};

class LocalComm : public Comm {
  public:
    int rank() const override { return 0; }
    int world() const override { return 1; }
    void all_reduce_sum(Tensor&) override {}
    Tensor all_gather(const Tensor& t) override { return t.detach().contiguous(); }
    void barrier() override {}
    void broadcast_bytes(std::string&, int) override {}
};

// The MPI communicator (one process per rank, under mpirun); an error when the build has no MPI.
bool mpi_available();
std::unique_ptr<Comm> make_mpi_comm();
// For a process that cannot go on: when it is one of several MPI ranks, ends them all (MPI_Abort) with
// this status, since the others would wait in their next collective for ever and MPI_Finalize at exit
// would wait for them; otherwise returns and the caller exits as usual.
void abort_mpi_job_if_running(int status);

// The NCCL communicator between GPUs (engine/dist/nccl_comm.cpp): rank r of world, its GPU chosen by
// local_rank, the unique id (NCCL's 128 bytes, from nccl_unique_id() on rank 0) already shared by every
// rank; it keeps `watch` (the tcp rendezvous's, peer_watch.h) for its life. CPU tensors given to it travel
// through the GPU. An error when the build has no NCCL.
bool nccl_available();
std::string nccl_unique_id();
std::unique_ptr<Comm> make_nccl_comm(int rank, int world, int local_rank, const std::string& unique_id,
                                     std::unique_ptr<PeerWatch> watch = nullptr);

// The communicator for this process. CPU (device CPU): MPI when started by mpirun (OMPI_COMM_WORLD_SIZE
// or PMI_SIZE above 1), else LocalComm (WORLD_SIZE above 1 without mpirun is an error). GPU (device CUDA)
// with several ranks: NCCL, its id broadcast by MPI under mpirun, or, when started torchrun-style with
// RANK, WORLD_SIZE and LOCAL_RANK, sent from rank 0 by the rendezvous of rendezvous.h (ACLIP_RENDEZVOUS,
// or MASTER_ADDR:MASTER_PORT; over tcp its connections then watch for a rank that ends early, and end the
// others, as mpirun would); a world of one is LocalComm either way.
std::unique_ptr<Comm> make_comm_from_environment(Device device = Device::CPU);

// N communicators for N threads of one process; communicator i is rank i.
std::vector<std::unique_ptr<Comm>> make_thread_comms(int world);

// all_gather that autograd sees through (the GatherLayer of SLIP / A-CLIP): forward concatenates every
// rank's rows; backward sums the gathered gradient over ranks and returns this rank's rows. With
// gradients averaged over ranks afterwards, this is the gradient of the loss over the global batch.
Tensor all_gather_with_grad(const Tensor& x, Comm& comm);

// Rows [0, n) of a matrix made in shares: the chunks of `chunk` rows are dealt to the ranks in turn, rank r
// makes its own (make(begin, end): (end - begin, width) on `device`), and every rank receives all n rows
// in order, as f32.
Tensor rows_across_ranks(int64_t n, int64_t chunk, int64_t width, Device device, Comm& comm,
                         const std::function<Tensor(int64_t, int64_t)>& make);
bool owns_row(int64_t row, int64_t chunk, const Comm& comm);  // whether this rank makes that row

// Averages the gradients of params over ranks (data parallel). Not one collective per parameter, each
// paying its latency (hundreds a step): the gradients of a dtype and device are copied into one flat
// buffer, reduced in pieces of at most kGradientBucket elements, scaled, and become views of it. A missing
// gradient counts as zeros, so every rank reduces the same buffers.
constexpr int64_t kGradientBucket = int64_t{1} << 26;  // 256 MiB of f32; MPI counts are ints
void average_gradients(const std::vector<Tensor>& params, Comm& comm);

}  // namespace aclip
