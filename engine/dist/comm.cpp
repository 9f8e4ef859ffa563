// comm.cpp: see comm.h. ThreadComm exchanges tensors through a shared hub guarded by a generation barrier.
#include "engine/dist/comm.h"

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <mutex>

#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/dist/rendezvous.h"
#include "engine/ops/ops.h"

namespace aclip {

namespace {

struct Hub {
    explicit Hub(int n) : world(n), slots(n) {}
    const int world;
    std::vector<Tensor> slots;
    std::string bytes;  // broadcast_bytes' exchange
    std::mutex mutex;
    std::condition_variable cv;
    int arrived = 0;
    uint64_t generation = 0;

    void barrier() {
        std::unique_lock<std::mutex> lock(mutex);
        uint64_t gen = generation;
        if (++arrived == world) {
            arrived = 0;
            ++generation;
            cv.notify_all();
        } else {
            cv.wait(lock, [&] { return generation != gen; });
        }
    }
};

class ThreadComm : public Comm {
  public:
    ThreadComm(std::shared_ptr<Hub> hub, int rank) : hub_(std::move(hub)), rank_(rank) {}
    int rank() const override { return rank_; }
    int world() const override { return hub_->world; }
    void barrier() override { hub_->barrier(); }

    void broadcast_bytes(std::string& data, int root) override {
        if (rank_ == root) hub_->bytes = data;
        hub_->barrier();  // written
        data = hub_->bytes;
        hub_->barrier();  // read by everyone before the next broadcast
    }

    Tensor all_gather(const Tensor& t) override {
        NoGradGuard no_grad;
        hub_->slots[rank_] = t.detach().contiguous();
        hub_->barrier();  // every slot is written
        for (int r = 0; r < world(); ++r)
            AC_CHECK(hub_->slots[r].shape() == hub_->slots[rank_].shape(), "all_gather: rank ", r, " sent ",
                     hub_->slots[r].desc(), " but rank ", rank_, " sent ", hub_->slots[rank_].desc());
        Tensor out = concat(hub_->slots, 0);
        hub_->barrier();  // every rank has read before any slot is overwritten
        return out;
    }

    void all_reduce_sum(Tensor& t) override {
        Tensor all = all_gather(t.reshape({1, -1}));  // (world, numel)
        NoGradGuard no_grad;
        t.copy_(sum(all, {0}).reshape(t.shape()));
    }

  private:
    std::shared_ptr<Hub> hub_;
    int rank_;
};

}  // namespace

std::vector<std::unique_ptr<Comm>> make_thread_comms(int world) {
    AC_CHECK(world >= 1, "make_thread_comms: world size ", world, " must be at least 1");
    auto hub = std::make_shared<Hub>(world);
    std::vector<std::unique_ptr<Comm>> comms;
    for (int r = 0; r < world; ++r) comms.push_back(std::make_unique<ThreadComm>(hub, r));
    return comms;
}

Tensor all_gather_with_grad(const Tensor& x, Comm& comm) {
    Tensor out = comm.all_gather(x);
    if (comm.world() == 1)
        return record("all_gather", out, {x}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
    const int64_t rows = x.size(0);
    const int rank = comm.rank();
    Comm* c = &comm;  // the communicator outlives the step's graph
    return record("all_gather", out, {x}, [c, rows, rank](const Tensor& g) {
        Tensor total = g.contiguous().clone();
        c->all_reduce_sum(total);
        return std::vector<Tensor>{total.narrow(0, rank * rows, rows).contiguous()};
    });
}

namespace {
int env_int(const char* name, int fallback) {
    const char* v = std::getenv(name);
    return v && *v ? std::atoi(v) : fallback;
}
}  // namespace

std::unique_ptr<Comm> make_comm_from_environment(Device device) {
    const bool mpirun = env_int("OMPI_COMM_WORLD_SIZE", 1) > 1 || env_int("PMI_SIZE", 1) > 1;
    const int world = env_int("WORLD_SIZE", 1);
    if (device == Device::CPU) {
        if (mpirun) return make_mpi_comm();
        AC_CHECK_HINT(world <= 1, "start CPU ranks with mpirun -np N: they communicate through MPI",
                      "WORLD_SIZE = ", world, " on the CPU without mpirun (each process would train alone)");
        return std::make_unique<LocalComm>();
    }
    if (mpirun) {  // one GPU per process; NCCL's id travels by MPI
        std::unique_ptr<Comm> mpi = make_mpi_comm();
        std::string id = mpi->rank() == 0 ? nccl_unique_id() : std::string();
        mpi->broadcast_bytes(id, 0);
        const int local = env_int("OMPI_COMM_WORLD_LOCAL_RANK", env_int("MPI_LOCALRANKID", mpi->rank()));
        return make_nccl_comm(mpi->rank(), mpi->world(), local, id);
    }
    if (world <= 1) return std::make_unique<LocalComm>();
    const int rank = env_int("RANK", 0);
    AC_CHECK_HINT(rank >= 0 && rank < world, "give each process its own RANK in 0 .. WORLD_SIZE - 1",
                  "RANK = ", rank, " with WORLD_SIZE = ", world);
    const std::string spec = rendezvous_spec_from_environment();  // first: its error needs no NCCL
    std::vector<PeerWatch::Peer> peers;  // a tcp rendezvous's connections, watched for the run
    const std::string id =
        rendezvous(spec, rank, world, rank == 0 ? nccl_unique_id() : std::string(128, '\0'), 300.0, &peers);
    return make_nccl_comm(rank, world, env_int("LOCAL_RANK", rank), id,
                          peers.empty() ? nullptr : std::make_unique<PeerWatch>(rank, std::move(peers)));
}

bool owns_row(int64_t row, int64_t chunk, const Comm& comm) {
    return (row / chunk) % comm.world() == comm.rank();
}

Tensor rows_across_ranks(int64_t n, int64_t chunk, int64_t width, Device device, Comm& comm,
                         const std::function<Tensor(int64_t, int64_t)>& make) {
    const int64_t world = comm.world(), chunks = (n + chunk - 1) / chunk;
    auto rows_of = [&](int64_t c) { return std::min(chunk, n - c * chunk); };
    std::vector<Tensor> mine;  // this rank's chunks, in order
    for (int64_t c = comm.rank(); c < chunks; c += world) {
        mine.push_back(make(c * chunk, c * chunk + rows_of(c)).to(DType::F32));
        AC_CHECK(mine.back().shape() == Shape({rows_of(c), width}), "rows_across_ranks: made ",
                 mine.back().desc(), " for rows ", c * chunk, " to ", c * chunk + rows_of(c), " of width ",
                 width);
    }
    if (chunks == 0) return empty({0, width}, DType::F32, device);
    if (world == 1) return concat(mine, 0);
    // all_gather takes equal shapes: each rank's chunks go in slots of `chunk` rows, as many as any holds
    const int64_t slots = (chunks + world - 1) / world;
    Tensor padded = zeros({slots * chunk, width}, DType::F32, device);
    for (size_t k = 0; k < mine.size(); ++k)
        padded.narrow(0, static_cast<int64_t>(k) * chunk, mine[k].size(0)).copy_(mine[k]);
    Tensor all = comm.all_gather(padded);  // (world * slots * chunk, width): chunk r + k world at r's slot k
    std::vector<Tensor> parts;
    for (int64_t c = 0; c < chunks; ++c)
        parts.push_back(all.narrow(0, ((c % world) * slots + c / world) * chunk, rows_of(c)));
    return concat(parts, 0);
}

void average_gradients(const std::vector<Tensor>& params, Comm& comm) {
    if (comm.world() == 1) return;
    NoGradGuard no_grad;
    // Parameters grouped by dtype and device, in order (one group in practice: f32 masters).
    std::vector<std::vector<size_t>> groups;
    for (size_t i = 0; i < params.size(); ++i) {
        auto same_kind = [&](const std::vector<size_t>& g) {
            return params[g[0]].dtype() == params[i].dtype() && params[g[0]].device() == params[i].device();
        };
        auto it = std::find_if(groups.begin(), groups.end(), same_kind);
        if (it == groups.end())
            groups.push_back({i});
        else
            it->push_back(i);
    }
    for (const std::vector<size_t>& group : groups) {
        std::vector<Tensor> pieces;  // every rank reduces every gradient: a missing one counts as 0
        for (size_t i : group) {
            const Tensor& p = params[i];
            pieces.push_back((p.grad().defined() ? p.grad() : zeros_like(p)).reshape({-1}));
        }
        Tensor flat = concat(pieces, 0);
        const int64_t n = flat.numel();
        for (int64_t at = 0; at < n; at += kGradientBucket) {
            Tensor part = flat.narrow(0, at, std::min(kGradientBucket, n - at));
            comm.all_reduce_sum(part);
        }
        flat.mul_(1.0 / comm.world());
        int64_t at = 0;
        for (size_t i : group) {  // each gradient becomes its piece of the buffer
            const Tensor& p = params[i];
            p.impl().grad = flat.narrow(0, at, p.numel()).view(p.shape()).impl_ptr();
            at += p.numel();
        }
    }
}

}  // namespace aclip
